"""``ssl multiple-choice``: the right ending or answer among several (SWAG, RACE, C3)."""

from ssl_cli.tasks import Command

COMMANDS = (
    Command("multiple-choice", "ssl_cli.tasks.multiple_choice.task",
            "Multiple choice: the right ending or answer among several (SWAG, RACE, C3), with accuracy."),
)
