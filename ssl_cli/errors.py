"""User-facing errors: one line, exit code 2, no traceback unless ``--debug``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


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


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message, its first line cut to ``limit`` characters (its type when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def not_utf8(what: str) -> str:
    """The one line for a text input in another encoding (``what``: the input, e.g. "recipe r.yaml")."""
    return f"{what} is not UTF-8 text: convert it, e.g. iconv -f latin1 -t utf-8"


def write_failure(err: Exception, where: Path) -> str | None:
    """Why writing under ``where`` failed, in the user's words, or None when ``err`` is not a failed write.

    A full disk says so. torch and safetensors report a short write in their own exception types (torch's zip
    writer: a RuntimeError "inline_container ... unexpected pos"), so a full disk is told by the space left.
    """
    import errno
    import shutil

    where = next((p for p in (where, *where.parents) if p.exists()), Path("."))  # the output dir may not exist yet
    full = shutil.disk_usage(where).free < (1 << 20) or getattr(err, "errno", None) == errno.ENOSPC
    if full:
        return "no space left on device"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    if "inline_container" in str(err):
        return f"the write failed ({str(err).splitlines()[0][:120]})"
    return None
