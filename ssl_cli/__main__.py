"""The ``ssl`` entry point (console script and ``python -m ssl_cli``, which ``accelerate launch -m ssl_cli`` runs).

It chooses the memory allocator before anything heavy is imported: a
training command re-executes itself once with tcmalloc preloaded when it is
installed (``ssl_cli.allocator``), then the CLI starts.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from ssl_cli.allocator import is_quick, reexec_with_allocator
    from ssl_cli.errors import UserError

    if is_quick(sys.argv[1:]):
        # help and --dry-run build the recipe models but need no pydantic plugins: skip scanning every
        # installed package's entry points for them (15-20 ms of a 0.3 s start)
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        reexec_with_allocator(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    from ssl_cli.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
