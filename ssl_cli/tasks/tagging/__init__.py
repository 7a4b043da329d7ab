"""``ssl tag-pos``: token classification (UPOS/XPOS, NER) over words."""

from ssl_cli.tasks.tagging.task import TASK

TASKS = (TASK,)
