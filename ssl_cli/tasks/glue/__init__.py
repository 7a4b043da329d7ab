"""``ssl finetune-glue`` and ``ssl nli``: sentence(-pair) classification and regression, and NLI on top of it."""

from ssl_cli.tasks.glue.nli import TASK as NLI
from ssl_cli.tasks.glue.task import TASK as GLUE

TASKS = (GLUE, NLI)
