"""``python -m ssl_cli`` is what ``accelerate launch -m ssl_cli`` runs."""

from ssl_cli.cli import main

if __name__ == "__main__":
    main()
