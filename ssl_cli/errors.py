"""User-facing errors: one line, exit code 2, no traceback unless ``--debug``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input that they can fix.

    The message must name the problem *and* the fix; the CLI prints it as a
    single line and exits with code 2.
    """

    exit_code = 2


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def note(message: str) -> None:
    """One line on stderr for something the user should know that is not an error (a skipped file, an ignored key)."""
    import sys

    sys.stderr.write(f"note: {message}\n")


def os_error_reason(err: OSError) -> str:
    """A failed write in the user's words: a full disk says so, anything else its system message."""
    import errno

    return "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
