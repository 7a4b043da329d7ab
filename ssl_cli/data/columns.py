"""Finding a task's columns in a table whose names vary by dataset (sentence / text / premise ...)."""

from __future__ import annotations

from ssl_cli.errors import UserError, did_you_mean


def find_column(names: list[str], explicit: str | None, candidates: tuple[str, ...], what: str, flag: str,
                source: str, required: bool = True) -> str | None:
    """The column holding ``what``: the explicit name, else the first candidate present."""
    if explicit:
        if explicit not in names:
            raise UserError(f"{source}: no column '{explicit}'{did_you_mean(explicit, names)}; columns: {', '.join(names)}")
        return explicit
    found = next((c for c in candidates if c in names), None)
    if found is None and required:
        raise UserError(f"{source}: no {what} column (looked for {', '.join(candidates)}); columns: {', '.join(names)}; "
                        f"name it with {flag}")
    return found
