"""``ssl finetune-qa``: extractive question answering (task, windows, post-processing, metrics, pipeline)."""

from ssl_cli.tasks.qa.task import TASK

TASKS = (TASK,)
