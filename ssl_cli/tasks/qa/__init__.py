"""``ssl finetune-qa``: extractive question answering (task, windows, post-processing, metrics, pipeline)."""

from ssl_cli.tasks import Command

COMMANDS = (
    Command("finetune-qa", "ssl_cli.tasks.qa.task",
            "Extractive question answering: start/end spans over stride windows (DRCD, CMRC 2018, SQuAD v1/v2)."),
)
