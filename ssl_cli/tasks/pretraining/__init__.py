"""``ssl pretrain-mlm`` and ``ssl pretrain-clm``: self-supervised language modelling (masking, sentence pairs,
blocks of text, generation)."""

from ssl_cli.tasks.pretraining.clm import TASK as CLM
from ssl_cli.tasks.pretraining.mlm import TASK as MLM

TASKS = (MLM, CLM)
