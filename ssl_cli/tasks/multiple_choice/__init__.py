"""``ssl multiple-choice``: the right ending or answer among several (SWAG, RACE, C3)."""

from ssl_cli.tasks.multiple_choice.task import TASK

TASKS = (TASK,)
