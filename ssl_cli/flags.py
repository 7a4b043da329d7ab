"""Command-line flags: the recipe key each one sets, and the spellings users bring from Hugging Face.

A ``run_glue.py`` / ``run_qa.py`` command line carries over as it is: both
``--do_train`` and ``--do-train``, HF's own names (``--model_name_or_path``,
``--overwrite_output_dir``, ``--evaluation_strategy``), booleans given a value
(``--do_predict false``) or switched off (``--no-do-predict``), and the HF flags
ssl has no use for (``--pad_to_max_length``), accepted with a note saying why.
Everything is rewritten to the canonical ``--kebab-case`` option before Click
parses it, and an error names the spelling the user typed.

This module must stay importable without torch, transformers or pydantic's
recipe models being built: it runs on every ``ssl`` start.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

MODEL, DATA, TRAINING, EVALUATION, RUN = "Model", "Data", "Training", "Evaluation and checkpoints", "Run"


@dataclass(frozen=True)
class Flag:
    """A first-class CLI flag and the recipe key it sets (its help is that key's description)."""

    name: str  # kebab-case, without the leading dashes
    path: str  # dotted recipe key
    type: type = str
    panel: str = ""  # the --help group; "" puts a task's own flags under the task's name
    value: Any = None  # a switch that sets ``path`` to this value: --fp16 sets training.mixed_precision: fp16
    help: str = ""  # the --help line where the key's description is too long for one (the docs keep all of it)

    def recipe_value(self, given: Any) -> Any:
        """What the flag given as ``given`` sets its key to; None: nothing (``--no-fp16`` leaves the precision)."""
        if self.value is not None:
            return self.value if given else None
        return given


def _flags(panel: str, *specs: tuple[Any, ...]) -> tuple[Flag, ...]:
    """(name, path[, type[, value]]) rows of one --help panel."""
    return tuple(Flag(*spec[:3], panel=panel, value=spec[3] if len(spec) > 3 else None,
                      help=SHORT_HELP.get(spec[0], "")) for spec in specs)


SHORT_HELP = {
    "model": "Hub id (bert-base-chinese), a local model directory, or scratch:bert-tiny (also bert-mini, "
             "bert-small, bert-base, gpt2-tiny: random weights, a tokenizer trained on the data).",
    "init": "pretrained: the checkpoint's weights; random: its architecture with fresh weights (a baseline).",
    "config-overrides": "Model config changes, as run_mlm.py's --config_overrides: e.g. num_hidden_layers=4.",
    "lr-scheduler-type": "Learning-rate schedule, any of transformers' get_scheduler.",
    "lr-scheduler-kwargs": "Arguments of the schedule: e.g. min_lr_rate=0.05 or num_cycles=1 (or JSON).",
    "mixed-precision": "auto: bf16 on GPUs that support it, else fp32 (CPUs too); bf16-weights: no autocast.",
    "eval-data": "More datasets to score the trained model on, comma separated (zero-shot transfer).",
    "validation-split-percentage": "Without a validation split, hold out this percentage of the training data.",
    "peft": "none, or lora: low-rank adapters, the head trained in full; the output dir holds the adapter.",
    "target-modules": "Layers that get LoRA adapters: auto (the blocks' linear projections) or names, comma separated.",
    "modules-to-save": "Modules trained in full with LoRA (default: the task head), comma separated.",
    "save-on-each-node": "Several machines without a shared disk: each writes checkpoints and outputs to its own.",
    "push-to-hub": "Upload the output dir (no checkpoints) to the Hub at the end; the login is checked first.",
    "merge": "Also write the LoRA adapter merged into its base, as a plain model in OUTPUT_DIR/merged.",
    "per-device-train-batch-size": "Training batch size per process, or auto: the largest that fits in memory.",
    "auto-find-batch-size": "Lower the batch size until a training step fits in memory (the Trainer's flag).",
    "tf32": "On CUDA, TF32 matmuls for what runs in fp32 (default: on).",
    "report-to": "Trackers, comma separated: tensorboard, wandb, mlflow, trackio, comet_ml, aim, clearml; all or none.",
}


#: Flags every subcommand shares, named as in Hugging Face's example scripts.
COMMON_FLAGS: tuple[Flag, ...] = (
    *_flags(MODEL,
            ("model", "model.name_or_path"),
            ("model-revision", "model.revision"),
            ("init", "model.init"),
            ("config-overrides", "model.config_overrides"),
            ("ignore-mismatched-sizes", "model.ignore_mismatched_sizes", bool),
            ("gradient-checkpointing", "model.gradient_checkpointing", bool),
            ("trust-remote-code", "model.trust_remote_code", bool),
            ("peft", "peft.method"),
            ("lora-r", "peft.lora_r", int),
            ("lora-alpha", "peft.lora_alpha", float),
            ("lora-dropout", "peft.lora_dropout", float),
            ("target-modules", "peft.target_modules"),
            ("modules-to-save", "peft.modules_to_save"),
            ("merge", "peft.merge", bool)),
    *_flags(DATA,
            ("data", "data.name"),
            ("dataset-config-name", "data.dataset_config_name"),
            ("dataset-info", "data.dataset_info"),
            ("train-file", "data.train_file"),
            ("validation-file", "data.validation_file"),
            ("test-file", "data.test_file"),
            ("eval-data", "data.eval_data"),
            ("max-seq-length", "data.max_seq_length", int),
            ("max-train-samples", "data.max_train_samples", int),
            ("max-eval-samples", "data.max_eval_samples", int),
            ("max-predict-samples", "data.max_predict_samples", int),
            ("validation-split-percentage", "data.validation_split_percentage", int),
            ("preprocessing-num-workers", "data.preprocessing_num_workers", int),
            ("overwrite-cache", "data.overwrite_cache", bool)),
    *_flags(TRAINING,
            ("do-train", "training.do_train", bool),
            ("per-device-train-batch-size", "training.per_device_train_batch_size"),
            ("per-device-train-tokens", "training.per_device_train_tokens", int),
            ("auto-find-batch-size", "training.auto_find_batch_size", bool),
            ("gradient-accumulation-steps", "training.gradient_accumulation_steps", int),
            ("optim", "training.optim"),
            ("optim-args", "training.optim_args"),
            ("learning-rate", "training.learning_rate", float),
            ("weight-decay", "training.weight_decay", float),
            ("adam-beta1", "training.adam_beta1", float),
            ("adam-beta2", "training.adam_beta2", float),
            ("adam-epsilon", "training.adam_epsilon", float),
            ("num-train-epochs", "training.num_train_epochs", float),
            ("max-steps", "training.max_steps", int),
            ("lr-scheduler-type", "training.lr_scheduler_type"),
            ("lr-scheduler-kwargs", "training.lr_scheduler_kwargs"),
            ("warmup-ratio", "training.warmup_ratio", float),
            ("warmup-steps", "training.warmup_steps", int),
            ("max-grad-norm", "training.max_grad_norm", float),
            ("group-by-length", "training.group_by_length", bool),
            ("seed", "training.seed", int),
            ("data-seed", "training.data_seed", int),
            ("mixed-precision", "training.mixed_precision"),
            ("fp16", "training.mixed_precision", bool, "fp16"),
            ("bf16", "training.mixed_precision", bool, "bf16"),
            ("tf32", "training.tf32", bool),
            ("torch-compile", "training.torch_compile", bool),
            ("torch-compile-mode", "training.torch_compile_mode"),
            ("dataloader-num-workers", "training.dataloader_num_workers"),
            ("dataloader-prefetch-factor", "training.dataloader_prefetch_factor", int),
            ("dataloader-pin-memory", "training.dataloader_pin_memory", bool),
            ("persistent-workers", "training.dataloader_persistent_workers", bool)),
    *_flags(EVALUATION,
            ("do-eval", "training.do_eval", bool),
            ("do-predict", "training.do_predict", bool),
            ("per-device-eval-batch-size", "training.per_device_eval_batch_size", int),
            ("eval-strategy", "training.eval_strategy"),
            ("eval-steps", "training.eval_steps", int),
            ("save-strategy", "training.save_strategy"),
            ("save-steps", "training.save_steps", int),
            ("save-total-limit", "training.save_total_limit", int),
            ("load-best-model-at-end", "training.load_best_model_at_end", bool),
            ("metric-for-best-model", "training.metric_for_best_model"),
            ("greater-is-better", "training.greater_is_better", bool),
            ("early-stopping-patience", "training.early_stopping_patience", int),
            ("logging-steps", "training.logging_steps", int),
            ("logging-first-step", "training.logging_first_step", bool),
            ("report-to", "training.report_to"),
            ("project", "training.project"),
            ("run-name", "training.run_name")),
    *_flags(RUN,
            ("output-dir", "training.output_dir"),
            ("overwrite", "training.overwrite", bool),
            ("resume", "training.resume", bool),
            ("resume-from-checkpoint", "training.resume_from_checkpoint"),
            ("save-on-each-node", "training.save_on_each_node", bool),
            ("push-to-hub", "training.push_to_hub", bool),
            ("hub-model-id", "training.hub_model_id"),
            ("hub-private-repo", "training.hub_private_repo", bool)),
)

#: Other names of the common flags: Hugging Face's (written kebab-case; ``_`` works as well).
COMMON_ALIASES: dict[str, str] = {
    "model-name-or-path": "model",
    "dataset-name": "data",
    "evaluation-strategy": "eval-strategy",  # TrainingArguments' name before transformers 4.41
    "overwrite-output-dir": "overwrite",
    "hub-private": "hub-private-repo",
    "dataloader-persistent-workers": "persistent-workers",  # too long for --help's option column
}

#: Options of every task command that are not recipe keys.
META_OPTIONS = ("recipe", "set", "dry-run", "debug", "help")
META_SWITCHES = ("dry-run", "debug", "help")


@dataclass(frozen=True)
class Unused:
    """A Hugging Face flag ssl has no use for: accepted, with a note saying why."""

    takes_value: bool  # False: a boolean (it may still be followed by true/false)
    reason: str


UNUSED_FLAGS: dict[str, Unused] = {
    "pad-to-max-length": Unused(False, "ssl pads each batch to its own longest feature (on TPUs, where shapes must "
                                       "stay fixed, to max_seq_length by itself)"),
    "use-fast-tokenizer": Unused(False, "ssl always uses the fast tokenizer (answer offsets and word alignment "
                                        "need it)"),
    "save-safetensors": Unused(False, "ssl always writes safetensors"),
    "disable-tqdm": Unused(False, "the progress line hides itself when the output is not a terminal"),
    "remove-unused-columns": Unused(False, "ssl passes the model only its input columns"),
    "return-entity-level-metrics": Unused(False, "tag-pos reports per-type entity scores whenever tags are BIO"),
    "cache-dir": Unused(True, "ssl uses the Hugging Face caches: set HF_HOME (or HF_HUB_CACHE, HF_DATASETS_CACHE) "
                              "to move them"),
    "logging-dir": Unused(True, "ssl logs under output_dir (train_log.jsonl; runs/ for TensorBoard)"),
    "log-level": Unused(True, "ssl shows library warnings and errors only; --debug shows tracebacks"),
    "token": Unused(True, "ssl reads the Hub token from HF_TOKEN or `hf auth login`"),
    "use-auth-token": Unused(True, "ssl reads the Hub token from HF_TOKEN or `hf auth login`"),
    "eval-accumulation-steps": Unused(True, "ssl moves evaluation outputs off the device every 32 batches"),
    "average-tokens-across-devices": Unused(False, "ssl always averages the loss over the tokens (or rows) of the "
                                                   "whole global batch, on every process"),
    "half-precision-backend": Unused(True, "ssl's fp16 and bf16 are torch.amp's, as the Trainer's auto picks"),
}

BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


@dataclass
class CommandOptions:
    """What one subcommand accepts, for rewriting its arguments before Click sees them."""

    valued: set[str] = field(default_factory=set)  # canonical names of options that take a value
    switches: set[str] = field(default_factory=set)  # canonical names of boolean flags (each has a --no- form)
    aliases: dict[str, str] = field(default_factory=dict)  # other spelling -> canonical name

    @classmethod
    def of(cls, flags: tuple[Flag, ...], aliases: dict[str, str]) -> CommandOptions:
        options = cls(aliases=dict(aliases))
        for flag in flags:
            (options.switches if flag.type is bool else options.valued).add(flag.name)
        options.valued.update(o for o in META_OPTIONS if o not in META_SWITCHES)
        options.switches.update(o for o in META_SWITCHES if o != "help")
        return options

    def known(self) -> list[str]:
        return sorted(self.valued | self.switches | {f"no-{s}" for s in self.switches} | set(self.aliases)
                      | set(UNUSED_FLAGS) | {"help"})


class FlagError(Exception):
    """A flag the command cannot take, already worded for the user (one line)."""


@dataclass
class Rewritten:
    """The arguments in canonical spelling, the notes to print, and each canonical option's original spelling."""

    args: list[str]
    notes: list[str] = field(default_factory=list)
    typed: dict[str, str] = field(default_factory=dict)


def rewrite_args(args: list[str], options: CommandOptions | None) -> Rewritten:
    """Canonical spelling of every option of one subcommand's arguments (``options`` None: only ``_`` -> ``-``).

    ``--do_predict false`` -> ``--no-do-predict``; ``--do-train=yes`` -> ``--do-train``; an unused HF flag is
    dropped (with its value) and noted. Values are never rewritten (``--set a.b_c=1`` keeps its value)."""
    out = Rewritten([])
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out.args += args[i - 1:]
            break
        if not arg.startswith("--") or arg == "--":
            out.args.append(arg)
            continue
        typed_name, sep, value = arg[2:].partition("=")
        name = typed_name.replace("_", "-")
        if options is None:
            out.typed.setdefault(name, f"--{typed_name}")
            out.args.append(f"--{name}{sep}{value}")
            continue
        name = options.aliases.get(name, name)
        following = args[i] if i < len(args) else None
        if name in UNUSED_FLAGS:
            unused = UNUSED_FLAGS[name]
            if not sep and following is not None and (unused.takes_value or following.lower() in BOOLEAN_WORDS):
                i += 1
            out.notes.append(f"--{typed_name} ignored: {unused.reason}")
            continue
        out.typed.setdefault(name, f"--{typed_name}")
        if name in options.switches or (name.startswith("no-") and name[3:] in options.switches):
            word = value if sep else None
            if word is None and following is not None and not following.startswith("-"):
                word, i = following, i + 1  # a value: true/false, or an error (there are no positional arguments)
            switch = _switch(name, typed_name, word)
            out.args += [switch] if switch else []
            continue
        out.args.append(f"--{name}{sep}{value}")
    return out


def _switch(name: str, typed_name: str, word: str | None) -> str:
    """``--x`` / ``--no-x`` for a boolean flag given as ``--x``, ``--x WORD``, ``--x=WORD`` or ``--no-x``."""
    negated = name.startswith("no-")
    base = name[3:] if negated else name
    if word is None:
        on = not negated
    elif word.lower() in BOOLEAN_WORDS and not negated:
        on = BOOLEAN_WORDS[word.lower()]
    else:
        raise FlagError(f"--{typed_name} takes true or false, not '{word}': write --{typed_name} true|false, "
                        f"or leave the value out")
    if base in META_SWITCHES and not on:
        return ""  # --debug false: the default
    return f"--{base}" if on else f"--no-{base}"


def unknown_option(typed: str, options: CommandOptions, command: str) -> str:
    """The one line for an option the command does not take, with the closest one in the user's own spelling."""
    underscored = "_" in typed
    name = typed.lstrip("-").split("=", 1)[0].replace("_", "-")
    close = difflib.get_close_matches(name, options.known(), n=1, cutoff=0.6)
    hint = ""
    if close:
        suggestion = close[0].replace("-", "_") if underscored else close[0]
        hint = f" (did you mean --{suggestion}?)"
    return f"no such option {typed.split('=', 1)[0]}{hint}; see 'ssl {command} --help'"
