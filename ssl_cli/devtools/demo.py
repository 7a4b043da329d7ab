"""``python -m ssl_cli.devtools.demo OUT_DIR``: write the demo's Chinese reading-comprehension set (``make demo``)."""

from __future__ import annotations

import sys

from ssl_cli.tasks.qa.data import write_demo_data

if __name__ == "__main__":
    written = write_demo_data(sys.argv[1] if len(sys.argv) > 1 else "demo-data")
    print(" ".join(str(p) for p in written.values()))
