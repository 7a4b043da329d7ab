"""ssl: fine-tuning and pretraining toolkit for self-supervised language models.

The package is named ``ssl_cli`` (not ``ssl``) so that it never shadows the
standard library's ``ssl`` module; the console script is still ``ssl``.
"""

__version__ = "0.1.0"
