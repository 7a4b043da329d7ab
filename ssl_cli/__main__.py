"""The ``ssl`` entry point (console script and ``python -m ssl_cli``, which ``accelerate launch -m ssl_cli`` runs).

It chooses the memory allocator before anything heavy is imported: a
training command re-executes itself once with tcmalloc preloaded when it is
installed (``ssl_cli.allocator``), then the CLI starts.
"""

from __future__ import annotations

import sys


def main() -> None:
    from ssl_cli.allocator import reexec_with_allocator
    from ssl_cli.errors import UserError

    try:
        reexec_with_allocator(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    from ssl_cli.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
