"""Typed recipes: YAML validated into pydantic models.

Precedence, lowest first: the task's built-in defaults < the recipe file <
``--set a.b=value`` overrides < first-class CLI flags. Every key has a type, a
default and a description (the description is also the ``--help`` text of
the matching flag and the docs' recipe reference), unknown keys are errors
with a "did you mean" hint, and the resolved recipe is saved with the run.

This module must stay importable without torch or transformers.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ssl_cli.errors import did_you_mean


class Section(BaseModel):
    """A recipe section: unknown keys are errors, values are checked on assignment, and a boolean is not a
    number (pydantic would read ``learning_rate: true`` as 1.0)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), defer_build=True,
                              allow_inf_nan=False)  # learning_rate: inf trained to NaN weights

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: Any) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and _is_numeric(annotation):
            raise ValueError(f"{str(value).lower()} is a boolean, not a number")
        if isinstance(value, str) and _is_list(annotation):  # --report_to tensorboard,wandb
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def _is_list(annotation: Any) -> bool:
    """A list, possibly optional: a string given for it is a comma list."""
    import typing

    return typing.get_origin(annotation) is list or any(typing.get_origin(a) is list for a in typing.get_args(annotation))


def _is_numeric(annotation: Any) -> bool:
    """int or float, possibly optional, and no boolean choice among the alternatives."""
    import typing

    if annotation in (int, float):
        return True
    arguments = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return False
    return any(_is_numeric(a) for a in arguments) and not any(
        a is bool or (typing.get_origin(a) is Literal and any(isinstance(v, bool) for v in typing.get_args(a)))
        for a in arguments)


#: Every schedule of transformers' ``get_scheduler`` (``SchedulerType``), kept here so that start-up imports no torch.
LR_SCHEDULES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                "warmup_stable_decay", "greedy")
#: The Trainer's --optim names that ssl runs (engine/optim.py builds them).
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop")
#: The optim_args each optimizer takes, with their types: the Trainer's own lists (trainer_optimizer.py),
#: less weight_decay, which the parameter groups set (training.weight_decay).
OPTIM_ARGS: dict[str, dict[str, type]] = {
    "sgd": {"momentum": float, "dampening": float, "nesterov": bool},
    "adagrad": {"lr_decay": float, "eps": float},
    "rmsprop": {"momentum": float, "alpha": float, "eps": float, "centered": bool},
}
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio", "comet_ml", "aim", "clearml")
MAX_LOADER_WORKERS = 64  # per process: a DGX node has 16 cores per GPU


class ModelConfig(Section):
    name_or_path: str = Field(
        "scratch:bert-tiny",
        description="Hub id (bert-base-chinese), local directory in Hugging Face layout, or a "
        "from-scratch spec scratch:bert-tiny|bert-mini|bert-small|bert-base (random weights plus "
        "a WordPiece tokenizer trained on the run's own training text).",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the model.")
    init: Literal["pretrained", "random"] = Field(
        "pretrained", description="pretrained: the checkpoint's weights. random: the same architecture (config) and "
        "tokenizer with fresh random weights, the baseline a pretrained model is compared with.",
    )
    config_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Model config attributes to change, as run_mlm.py's --config_overrides: a mapping, or on the "
        "command line 'num_hidden_layers=4,hidden_size=256'. Unknown attributes are errors. Shape changes need "
        "init: random (or a scratch: model).",
    )
    trust_remote_code: bool = Field(
        False, description="Allow custom modelling code from the Hub. Off by default: it runs code you have not read."
    )
    ignore_mismatched_sizes: bool = Field(
        False, description="Start a new, random head when --model was fine-tuned with another number of labels "
        "(run_glue.py's --ignore_mismatched_sizes). Off, such a model is refused, naming both counts.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, slower steps."
    )
    fast_cpu_dropout: bool = Field(
        True, description="When training on CPU, draw dropout masks from 16-bit random integers (four per 64-bit "
        "draw) instead of bernoulli_'s one double per element on one thread: the drop rate rounded to a multiple of "
        "1/65536 (0.1 becomes 0.100006, scaled to match). Faster dropout at the same peak RSS (its saved mask is 1 "
        "byte per element, not 4); figures in docs/performance.md.",
    )
    scratch_vocab_size: int = Field(
        8000, ge=100, description="Vocabulary size of the tokenizer trained for a scratch: model."
    )
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="Override hidden and attention dropout of the model config (null keeps it)."
    )
    attention_dropout: float | Literal["auto"] | None = Field(
        "auto",
        description="Dropout on attention probabilities. auto: 0 when training on CPU, where PyTorch's fused "
        "attention kernel has no dropout and the unfused path it falls back to is slower and holds more memory "
        "(docs/performance.md); elsewhere the model's own value. A number forces it; null keeps the model config's "
        "value everywhere. An explicit `dropout` also sets it.",
    )


    @field_validator("config_overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: Any) -> Any:
        return parse_key_values(value, "num_hidden_layers=4,hidden_size=256")


def parse_key_values(value: Any, example: str) -> Any:
    """'a=1,b=gelu' (or JSON '{"a": 1}') -> {"a": 1, "b": "gelu"}, each value read as YAML (numbers, booleans,
    null); a mapping passes through."""
    import yaml  # imported where used: start-up (ssl --help) never needs YAML

    if not isinstance(value, str):
        return value
    if value.strip().startswith("{"):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"'{value}' is not a mapping (write e.g. {example})") from None
        if isinstance(parsed, dict):
            return {key: _number_if_written_as_one(v) for key, v in parsed.items()}
    pairs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{item}' is not key=value (write e.g. {example})")
        if key.strip() in pairs:
            raise ValueError(f"'{key.strip()}' is given twice: give each setting once")
        pairs[key.strip()] = _number_if_written_as_one(yaml.safe_load(raw)) if raw.strip() else None
    return pairs


def _number_if_written_as_one(value: Any) -> Any:
    """YAML 1.1 reads ``1e-9`` (no dot) as a string; a typed field would take it as a number, so here too."""
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def _is_a(value: Any, kind: type) -> bool:
    """A bool is a bool; a number is a finite int or float that is not a bool (YAML's 1 and 0.9 alike; not
    ``1e400``, which reads as inf, nor nan)."""
    if kind is bool:
        return isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class DataConfig(Section):
    name: str | None = Field(
        None,
        description="A registered dataset (each command's --help lists its own), a local file or a directory "
        "(a save_to_disk dataset, or files named by split). Null uses train_file/validation_file/test_file.",
    )
    dataset_info: str | None = Field(
        None, description="A registry of the user's own datasets (YAML or JSON, as LLaMA-Factory's "
        "dataset_info.json): name -> hf_hub_url or file_name/files, columns, task. Null: dataset_info.yaml or "
        ".json in the working directory, if any.",
    )
    dataset_config_name: str | None = Field(
        None, description="Configuration of a Hub dataset (run_glue.py's --dataset_config_name), as "
        "`--data org/name:config` gives it.",
    )
    train_file: str | None = Field(
        None, description="Training data file: JSON, JSONL, CSV, TSV, Parquet, CoNLL-U/CoNLL (tagging) or .txt (pretraining)."
    )
    validation_file: str | None = Field(None, description="Evaluation data file.")
    test_file: str | None = Field(None, description="Test data file; its predictions are written with do_predict.")
    eval_data: list[str] = Field(
        default_factory=list,
        description="Extra datasets (names or paths) to evaluate the trained model on, each with its own "
        "metrics: one model, several test sets (e.g. zero-shot cross-lingual transfer).",
    )
    text_sample_by: Literal["line", "paragraph", "document"] = Field(
        "line", description="How a .txt file splits into examples: one per line, one per blank-line-separated "
        "paragraph, or the whole file.",
    )
    validation_split_percentage: int = Field(
        10,
        ge=1,
        le=50,
        description="When the data has no validation split, hold out this percentage of it, grouped by "
        "article/paragraph so that no context is in both splits.",
    )
    max_seq_length: int = Field(384, ge=16, description="Maximum tokens per feature; what a feature holds is the "
                                "task's (`ssl <command> --help`): question + context window, text pair, block...")
    max_train_samples: int | None = Field(None, ge=1, description="Truncate the training examples to this many.")
    max_eval_samples: int | None = Field(None, ge=1, description="Truncate the evaluation examples to this many.")
    max_predict_samples: int | None = Field(None, ge=1, description="Truncate the test examples to this many.")
    preprocessing_num_workers: int | None = Field(
        None, ge=1, le=256, description="Processes for tokenisation (datasets.map), at most 256 (one per core pays; "
        "more only fork).")
    overwrite_cache: bool = Field(False, description="Ignore the datasets cache and preprocess again.")
    strict: bool = Field(
        False, description="Fail on malformed examples (e.g. answer_start not matching the context) instead of skipping them."
    )


class TrainingConfig(Section):
    output_dir: str = Field("outputs/run", description="Where the model, checkpoints, metrics and logs are written.")
    overwrite: bool = Field(False, description="Allow writing into a non-empty output_dir: its contents are replaced, deleted once the "
                      "new run has made its first step (docs/reliability.md).")
    resume: bool = Field(False, description="Resume from the newest complete checkpoint in output_dir.")
    resume_from_checkpoint: str | None = Field(None, description="Resume from this checkpoint directory.")
    do_train: bool = Field(True, description="Train.")
    do_eval: bool = Field(True, description="Evaluate on the validation split (and eval_data).")
    do_predict: bool = Field(False, description="Write predictions for the test split.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Random seed for initialisation, shuffling and dropout "
                      "(0 to 2**32-1, numpy's range).")
    data_seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seed of the training batches' order alone (the Trainer's "
        "--data_seed), so that seeds of initialisation and dropout can vary over one data order, or the order "
        "over one initialisation; null: seed.")
    per_device_train_batch_size: int | Literal["auto"] = Field(
        12, description="Training batch size per process. auto: the largest that fits in the device's memory, "
        "found by trying training steps on the longest rows before training (up to 32 on CPU, where bigger batches "
        "do not run faster); the size chosen is in all_results.json and a resumed run keeps it. With padding-free "
        "rows, auto finds a token budget (per_device_train_tokens).")
    per_device_train_tokens: int | None = Field(
        None, ge=1, description="Training batches by tokens instead of rows: each process's batch holds as many whole "
        "rows as fit in this many token positions (rows x their longest length), rows of similar length together. "
        "With padding-free rows and per_device_train_batch_size auto, the search sets it (auto sizes the batch in "
        "tokens there).")
    auto_find_batch_size: bool = Field(
        False, description="The Trainer's flag: per_device_train_batch_size is the upper bound, lowered (by the same "
        "search as auto) until a training step fits in memory.")
    auto_batch_lr_scaling: Literal["none", "sqrt", "linear"] = Field(
        "none", description="How the learning rate follows an automatic batch size: none keeps learning_rate (and "
        "says so); sqrt or linear scale it by (chosen size / auto_batch_reference_size) to that power.")
    auto_batch_reference_size: int = Field(
        32, ge=1, description="The per-process batch size learning_rate was tuned for, for auto_batch_lr_scaling.")
    per_device_eval_batch_size: int = Field(32, ge=1, description="Evaluation batch size per process.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches accumulated into one optimizer step, weighed by their rows or tokens as one "
        "batch that many times larger would be (Trainer's num_items_in_batch; not under DeepSpeed, which scales "
        "its own).")
    optim: Literal[OPTIMIZERS] = Field(  # type: ignore[valid-type]
        "adamw_torch", description="The optimizer, by the Trainer's --optim names. adamw_torch and adamw_torch_fused "
        "are one AdamW, fused where the device has the kernel (CPU, CUDA); adafactor is transformers' Adafactor at "
        "learning_rate (scale_parameter and relative_step off, as the Trainer sets them); sgd, adagrad and rmsprop "
        "are torch's, with its defaults. The adam_* keys apply to AdamW only.")
    optim_args: dict[str, Any] = Field(
        default_factory=dict, description="Settings of sgd, adagrad or rmsprop, as the Trainer's --optim_args: on the "
        "command line 'momentum=0.9,nesterov=true' or JSON. sgd: momentum, dampening, nesterov; adagrad: lr_decay, "
        "eps; rmsprop: momentum, alpha, eps, centered (weight decay is training.weight_decay).")
    learning_rate: float = Field(3e-5, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="Weight decay (not applied to biases and LayerNorm).")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2.")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    max_grad_norm: float | None = Field(
        1.0, ge=0, description="Clip gradients to this norm (0 or null: no clipping, as the Trainer's 0).")
    num_train_epochs: float = Field(2.0, gt=0, description="Training epochs (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Total optimizer steps; overrides num_train_epochs.")
    lr_scheduler_type: Literal[LR_SCHEDULES] = Field(  # type: ignore[valid-type]
        "linear", description="Learning-rate schedule (transformers' get_scheduler). reduce_lr_on_plateau and "
        "greedy follow the best-model metric at each evaluation; cosine_with_min_lr and "
        "cosine_warmup_with_min_lr end at min_lr_rate 0.1 of the peak, warmup_stable_decay decays over the last "
        "10% of the steps, unless lr_scheduler_kwargs says otherwise."
    )
    lr_scheduler_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra arguments of the schedule, as the Trainer's lr_scheduler_kwargs: a "
        "mapping, or on the command line 'min_lr_rate=0.05' or JSON (e.g. num_cycles, power, num_decay_steps, "
        "patience).",
    )
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Fraction of the steps spent warming up.")
    warmup_steps: int | None = Field(None, ge=0, description="Warmup steps; overrides warmup_ratio.")
    mixed_precision: Literal["auto", "no", "fp16", "bf16", "bf16-weights"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it (Ampere+, TPU), else fp32, on CPUs too (bf16 autocast "
        "trains slower there, even with AMX: ask for bf16 to save memory). fp16 needs a GPU. bf16-weights: the "
        "forward and backward passes in bf16 throughout, without autocast's casts, with fp32 master weights, "
        "optimizer, checkpoints and saved model (DeepSpeed's bf16; for CPUs with AMX, see ssl env's measured bf16 "
        "speed; one process or DDP).",
    )
    torch_compile: bool = Field(
        False,
        description="Compile the model with torch.compile (inductor), each repeated layer once (regional "
        "compilation). Pays off only in long runs: the first steps compile, later ones run faster "
        "(docs/performance.md, 'torch.compile').",
    )
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode when torch_compile is on (max-autotune: longer compile, faster GPU kernels). "
        "reduce-overhead and max-autotune replay CUDA graphs on a GPU, one recorded per batch shape: with "
        "dynamic padding's many lengths they can run slower than eager (docs/performance.md); "
        "training.pad_to_multiple_of cuts the number of shapes."
    )
    group_by_length: bool = Field(
        True, description="Batch features of similar length together: far less padding, same randomness across epochs."
    )
    padding_microbatches: Literal["auto", True, False] = Field(
        "auto",
        description="Run a batch whose lengths differ as a few length-sorted micro-batches, each padded to its own "
        "longest feature, when that costs less than the padding it saves; their gradients add up to the whole "
        "batch's (losses weighted by each one's share), so batches stay random and results the same. auto: on "
        "CPU; true: on accelerators too; "
        "false: one padded batch. Never with static shapes (TPU).",
    )
    profile_steps: int = Field(
        0, ge=0, description="Record this many training steps with torch.profiler (after one step of wait and one of "
        "warm-up) into output_dir/profile: trace.json for Perfetto or chrome://tracing, summary.json (mean step "
        "time, the device's busy share of it, the operators with the most self time), operators.txt. 0: off.")
    tf32: bool | None = Field(
        None, description="On CUDA, TF32 matmuls for what runs in fp32 (null: on, as the GPU default; false: full "
        "fp32 matmuls). Ignored elsewhere.")
    padding_free: Literal["auto", True, False] = Field(
        "auto", description="Train on padding-free rows: each batch's real tokens end to end in one row, positions "
        "restarting per sequence, attention within each sequence (FlashAttention-2 with flash-attn on CUDA, else "
        "PyTorch's nested-tensor SDPA), the heads reading the usual padded layout. Used only if the model gives "
        "padding-free rows the outputs it gives padded ones (checked before training). auto: on GPUs and other "
        "accelerators, without torch_compile; on CPU padding_microbatches and pack_sequences are faster.",
    )
    static_token_batches: Literal["auto", True, False] = Field(
        "auto", description="Fill every padding-free training batch out to one shape: the fullest batch's real "
        "tokens plus short filler sequences, in a fixed number of sequences, so that torch.compile compiles the "
        "layers once and CUDA graphs record one graph (docs/performance.md, 'Static token batches'). auto: on with "
        "padding_free true, a token budget and torch_compile_mode reduce-overhead or max-autotune on CUDA; true "
        "needs padding_free and a token budget (per_device_train_tokens, or per_device_train_batch_size auto, "
        "which finds one).",
    )
    pack_sequences: Literal["auto", True, False] = Field(
        "auto",
        description="For losses over tokens (tag-pos): train on rows that hold several sentences end to end, each "
        "attending only to itself with positions restarting, so a random batch is one pass with almost no padding; "
        "outputs and gradients are the unpacked batch's. Used only if a check before training shows the model "
        "gives packed sentences the outputs it gives them alone (BERT, RoBERTa, ELECTRA, ALBERT, DistilBERT and "
        "ModernBERT do; DeBERTa, MPNet and eager attention do not). auto: on CPU (one pass per batch instead of "
        "several micro-batches); true: on accelerators too, and a model that fails the check is an error; false: "
        "never. Never with static shapes (TPU).",
    )
    microbatch_pass_overhead: int | None = Field(
        None, ge=0, description="What splitting a batch weighs against the padding it saves: the cost of one more "
        "forward and backward pass, in padded tokens. null: 64 on CPU (more for models under 3M "
        "non-embedding parameters, where Python's dispatch dominates); raise it on accelerators.",
    )
    pad_to_multiple_of: int | None = Field(
        None, ge=1, description="Pad each batch to a multiple of this (8 helps tensor cores). TPUs always pad to max_seq_length."
    )
    eval_strategy: Literal["no", "steps", "epoch"] = Field("epoch", description="When to evaluate during training.")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate every N steps (implies eval_strategy=steps).")
    save_strategy: Literal["no", "steps", "epoch"] = Field("epoch", description="When to write checkpoints.")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every N steps (implies save_strategy=steps).")
    save_total_limit: int | None = Field(
        2, ge=1, description="Keep at most this many checkpoints (the best one is never deleted)."
    )
    logging_steps: int = Field(20, ge=1, description="Log loss and learning rate every N steps.")
    logging_first_step: bool = Field(
        False, description="Also log the first step (the Trainer's --logging_first_step): a run's starting loss.")
    metric_for_best_model: str | None = Field(
        None, description="Metric that picks the best checkpoint (e.g. f1); null uses the task's main metric."
    )
    greater_is_better: bool | None = Field(None, description="Direction of metric_for_best_model (default: from the task).")
    load_best_model_at_end: bool = Field(
        True, description="Finish with the weights of the best evaluated checkpoint, not the last."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement."
    )
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers (a comma list on the command line): tensorboard, wandb, mlflow, trackio, comet_ml, "
        "aim, clearml; all (every one installed) or none. The recipe is logged as the run's hyper-parameters. wandb "
        "runs offline with WANDB_MODE=offline; mlflow writes to MLFLOW_TRACKING_URI, by default a file store in "
        "./mlruns. One asked for by name but not installed is an error before anything is written.",
    )
    project: str | None = Field(
        None, description="The trackers' project (wandb and trackio project, mlflow experiment, the tensorboard "
        "folder under output_dir/runs). null: WANDB_PROJECT if set, else ssl.",
    )
    run_name: str | None = Field(
        None, description="The run's name in the trackers (TrainingArguments' run_name). null: the output dir's name.",
    )
    save_on_each_node: bool = Field(
        False, description="With several machines whose disks are not shared: every machine writes the "
        "checkpoints and the final output dir to its own disk (its first process does), as the Trainer's "
        "save_on_each_node. Off: the first machine writes them once, on a disk all machines share.",
    )
    push_to_hub: bool = Field(
        False, description="Upload the output dir (model, tokenizer, model card, metrics; not the checkpoints) to the "
        "Hugging Face Hub at the end. The Hub and a login (HF_TOKEN or `hf auth login`) are checked before the "
        "data is read.",
    )
    hub_model_id: str | None = Field(None, description="The Hub repository to push to (user/name). null: the output dir's name.")
    hub_private_repo: bool | None = Field(
        None, description="Create the Hub repository private (null: the Hub's default for the account)."
    )
    dataloader_num_workers: int | Literal["auto"] = Field(
        "auto", description="Worker processes that collate batches beside the training (and evaluation) loop, per "
        "process. auto: none on CPU, where they would take cores from the step, and with streamed data; on CUDA up "
        "to 4, one less than the CPUs each process has, so the host never stalls the GPU between steps. At most "
        f"{MAX_LOADER_WORKERS}: more would only exhaust the host's memory and process limits.",
        json_schema_extra={"at_least": 0, "at_most": MAX_LOADER_WORKERS})
    dataloader_prefetch_factor: int | None = Field(
        None, ge=1, description="Batches each loader worker prepares ahead (null: PyTorch's 2). Needs workers.")
    dataloader_pin_memory: bool = Field(
        True, description="Collate into pinned (page-locked) memory on CUDA, so batches reach the GPU without a copy "
        "the step waits on.")
    dataloader_persistent_workers: bool = Field(
        False, description="Keep the loader workers between epochs instead of starting them each epoch. Not with "
        "per-epoch masks (pretrain-mlm), which the workers' copies of the collator would not see change.")
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: torch's choice).")
    trim_cpu_memory: bool = Field(
        True,
        description="On Linux CPUs running glibc's malloc (not when ssl preloads tcmalloc: ssl_cli/allocator.py), "
        "hand free heap memory back to the OS (malloc_trim) after a batch that left 256 MB "
        "or more free: changing batch shapes fragment the heap, and trimming trades some speed for a lower peak RSS "
        "(docs/performance.md). Packed pretraining blocks all share one shape; there the free heap a step leaves is "
        "reused by the next, and only its growth by 256 MB is trimmed. Set false for speed when memory is plentiful.",
    )

    @field_validator("lr_scheduler_kwargs", mode="before")
    @classmethod
    def _parse_scheduler_kwargs(cls, value: Any) -> Any:
        return parse_key_values(value, "min_lr_rate=0.05")

    @field_validator("optim_args", mode="before")
    @classmethod
    def _parse_optim_args(cls, value: Any) -> Any:
        return parse_key_values(value, "momentum=0.9")

    @model_validator(mode="after")
    def _optim_args_of_the_optimizer(self) -> TrainingConfig:
        """Each of optim_args is one the optimizer takes, of its type: the Trainer drops the others unread."""
        takes, given = OPTIM_ARGS.get(self.optim, {}), self.optim_args
        for name, value in given.items():
            if name not in takes:
                adam_keys = " (set adam_beta1, adam_beta2, adam_epsilon)" if self.optim.startswith("adamw") else ""
                accepted = f"it takes {', '.join(takes)}" if takes else f"it takes none{adam_keys}"
                raise ValueError(f"optim_args {name!r} is not a setting of {self.optim}: {accepted}"
                                 + did_you_mean(name, list(takes)))
            if not _is_a(value, takes[name]) or takes[name] is float and value < 0:
                raise ValueError(f"optim_args {name}={value!r}: {self.optim}'s {name} is "
                                 f"{'a finite number from 0 up' if takes[name] is float else 'true or false'}")
        if given.get("nesterov") and (not given.get("momentum") or given.get("dampening")):
            raise ValueError("optim_args nesterov=true needs momentum above 0 and dampening 0 (torch's SGD): "
                             "e.g. momentum=0.9, without dampening")
        return self

    @field_validator("report_to", mode="after")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        for name in names:
            if name not in (*TRACKERS, "none", "all"):
                raise ValueError(f"unknown tracker '{name}'{did_you_mean(name, TRACKERS)}; choose from "
                                 f"{', '.join(TRACKERS)}, all or none")
        return names

    @field_validator("per_device_train_batch_size", mode="before")
    @classmethod
    def _batch_size_or_auto(cls, value: Any) -> Any:
        """One message for every wrong value (pydantic's would list one per alternative of the union)."""
        return _count_or_auto(value, 1, "the largest batch that fits in memory")

    @field_validator("dataloader_num_workers", mode="before")
    @classmethod
    def _workers_or_auto(cls, value: Any) -> Any:
        return _count_or_auto(value, 0, "as many as the device wants", most=MAX_LOADER_WORKERS)

    @model_validator(mode="after")
    def _prefetch_needs_workers(self) -> TrainingConfig:
        if self.dataloader_prefetch_factor is not None and self.dataloader_num_workers == 0:
            raise ValueError("dataloader_prefetch_factor needs loader workers: set dataloader_num_workers to auto or "
                             "a number above 0, or leave dataloader_prefetch_factor unset")
        return self

    @model_validator(mode="after")
    def _static_batches_need_a_budget(self) -> TrainingConfig:
        if self.static_token_batches is not True:
            return self
        if self.padding_free is False:
            raise ValueError("static_token_batches pads padding-free batches, and padding_free is false: set "
                             "padding_free to true, or static_token_batches to auto")
        if self.per_device_train_tokens is None and self.per_device_train_batch_size != "auto" \
                and not self.auto_find_batch_size:
            raise ValueError("static_token_batches pads each batch to a token budget, and none is set: add "
                             "--per-device-train-tokens N (or --per-device-train-batch-size auto)")
        return self

    @property
    def sampling_seed(self) -> int:
        """What orders the training batches (and a stream's shuffle): data_seed, or seed."""
        return self.seed if self.data_seed is None else self.data_seed

    @field_validator("eval_strategy", "save_strategy", "mixed_precision", "optim", mode="before")
    @classmethod
    def _choice_as_written(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``no`` as False; here it means the choice "no". Case is not a choice: ``BF16`` and
        ``Epoch`` mean ``bf16`` and ``epoch``."""
        if value is False:
            return "no"
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _steps_imply_strategy(self) -> TrainingConfig:
        """Giving ``eval_steps``/``save_steps`` means evaluating/saving every that many steps."""
        if self.eval_steps is not None:
            object.__setattr__(self, "eval_strategy", "steps")
        if self.save_steps is not None:
            object.__setattr__(self, "save_strategy", "steps")
        return self


def _count_or_auto(value: Any, least: int, auto_means: str, most: int | None = None) -> int | str:
    """``auto``, or a whole number of at least ``least`` (and at most ``most``): one message for every other
    value."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        count = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        count = None
    if count is None or count < least or (most is not None and count > most):
        span = f"from {least} to {most}" if most is not None else f"of at least {least}"
        raise ValueError(f"must be a whole number {span}, or auto ({auto_means})")
    return count


class PeftConfig(Section):
    method: Literal["none", "lora"] = Field(
        "none", description="Parameter-efficient fine-tuning through peft. lora: low-rank adapters on the attention "
        "and MLP projections, the task head trained in full, the rest frozen; the output dir holds the adapter "
        "(adapter_config.json, adapter_model.safetensors) that peft's AutoPeftModelFor... loads.",
    )
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: float = Field(16, gt=0, description="LoRA scaling numerator: updates are scaled by lora_alpha / lora_r.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["auto"], description="Layers that get adapters: auto (every linear projection of "
        "the repeated blocks: BERT's query/key/value/dense, GPT-2's c_attn/c_proj/c_fc, Llama's q/k/v/o and "
        "gate/up/down...), or module names as peft matches them (a name matches its suffix).",
    )
    modules_to_save: list[str] | None = Field(
        None, description="Modules trained in full and saved with the adapter. null: the task head (classifier, "
        "qa_outputs, score, ...: what the model adds to its base, except weights tied to the embeddings).",
    )
    merge: bool = Field(
        False, description="Also write the adapter merged into its base as a plain model in output_dir/merged, "
        "which from_pretrained and pipeline(...) load without peft.",
    )


class Recipe(Section):
    """The fields every task shares; each task subclasses it and adds its own section."""

    task: str = Field(description="The subcommand this recipe is for.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    peft: PeftConfig = Field(default_factory=PeftConfig)


# --------------------------------------------------------------------------- cadences

_EVAL_CADENCE = {"training.eval_strategy", "training.eval_steps"}
_SAVE_CADENCE = {"training.save_strategy", "training.save_steps"}


def selects_best_checkpoint(training: TrainingConfig) -> bool:
    """Whether the run picks its best checkpoint by evaluation, which needs a checkpoint at every evaluation."""
    return training.load_best_model_at_end and training.do_train and "no" not in (training.eval_strategy,
                                                                                   training.save_strategy)


def cadences_agree(training: TrainingConfig) -> bool:
    """Whether there is a checkpoint at every evaluation, as best-model loading needs (the Trainer's rule)."""
    if training.eval_strategy != training.save_strategy:
        return False
    return training.eval_strategy != "steps" or (training.save_steps or 1) % (training.eval_steps or 1) == 0


def align_cadences(training: TrainingConfig, given: set[str]) -> None:
    """A cadence the user chose wins over a default they did not: ``--save-steps 5`` alone evaluates every 5
    steps too, so that the best checkpoint can still be loaded at the end. When they chose both and the two
    disagree, best-model loading, unless they asked for it too, is switched off with a note; when they asked for
    all three, ``run.check_strategies`` refuses."""
    from ssl_cli.errors import note

    if not selects_best_checkpoint(training) or cadences_agree(training):
        return
    eval_given, save_given = bool(given & _EVAL_CADENCE), bool(given & _SAVE_CADENCE)
    if save_given and not eval_given:
        training.eval_steps = training.save_steps
        training.eval_strategy = training.save_strategy
        note(f"evaluating at every checkpoint ({_cadence(training.save_strategy, training.save_steps)}): "
             "load_best_model_at_end picks among evaluated checkpoints; set --eval-steps to choose otherwise")
    elif eval_given and not save_given:
        training.save_steps = training.eval_steps
        training.save_strategy = training.eval_strategy
        note(f"saving a checkpoint at every evaluation ({_cadence(training.eval_strategy, training.eval_steps)}): "
             "load_best_model_at_end picks among them; set --save-steps to choose otherwise")
    elif "training.load_best_model_at_end" not in given:
        training.load_best_model_at_end = False
        note(f"load_best_model_at_end off: evaluation ({_cadence(training.eval_strategy, training.eval_steps)}) "
             f"and checkpoints ({_cadence(training.save_strategy, training.save_steps)}) do not fall together; "
             "the last weights are kept")


def _cadence(strategy: str, steps: int | None) -> str:
    return f"every {steps} steps" if strategy == "steps" else "every epoch"
