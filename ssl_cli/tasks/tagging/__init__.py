"""``ssl tag-pos``: token classification (UPOS/XPOS, NER) over words."""

from ssl_cli.tasks import Command

COMMANDS = (
    Command("tag-pos", "ssl_cli.tasks.tagging.task",
            "Token classification: part-of-speech tags (Universal Dependencies UPOS/XPOS) and NER (BIO/BIOES)."),
)
