"""``ssl finetune-glue`` and ``ssl nli``: sentence(-pair) classification and regression, and NLI on top of it."""

from ssl_cli.tasks import Command

COMMANDS = (
    Command("finetune-glue", "ssl_cli.tasks.glue.task",
            "Sentence and sentence-pair classification and regression (GLUE, CLUE, local tables)."),
    Command("nli", "ssl_cli.tasks.glue.nli",
            "Natural language inference: premise/hypothesis to entailment, neutral or contradiction (MNLI, XNLI, OCNLI)."),
)
