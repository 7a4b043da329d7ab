"""``ssl pretrain-mlm`` and ``ssl pretrain-clm``: self-supervised language modelling (masking, sentence pairs,
blocks of text, generation)."""

from ssl_cli.tasks import Command

COMMANDS = (
    Command("pretrain-mlm", "ssl_cli.tasks.pretraining.mlm",
            "Masked-language-model pretraining (BERT): from scratch with a tokenizer trained on the corpus, or continued."),
    Command("pretrain-clm", "ssl_cli.tasks.pretraining.clm",
            "Causal language-model pretraining (GPT-2 style): next-token prediction, perplexity on held-out text."),
)
