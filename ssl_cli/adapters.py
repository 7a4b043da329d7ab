"""LoRA through ``peft``: which layers get adapters, which modules train in full, and what the output dir holds.

``auto`` targets every linear projection inside the model's repeated blocks (the
one ``ModuleList`` of identical layers): attention and MLP alike, for any
architecture, with no table of names to keep up with transformers. The task
head (what the task model adds to its base) trains in full, as a head trained
from scratch must, except weights tied to the input embeddings (a language
model's output layer), which stay frozen with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, first_line

#: peft's task types, by the pipeline tag of ssl's tasks (sets the PeftModel class AutoPeftModelFor... expects).
PEFT_TASK_TYPES = {"text-classification": "SEQ_CLS", "token-classification": "TOKEN_CLS",
                   "question-answering": "QUESTION_ANS", "text-generation": "CAUSAL_LM"}
MERGED_DIR = "merged"
#: The transformers config of the model an adapter completes (its labels, its padding token): what a merged
#: model's config.json holds. An adapter dir has no config.json of its own (transformers would load it as a
#: full model), and peft rebuilds the base's head at the base's own label count.
TASK_CONFIG = "task_config.json"


def uses_lora(recipe: Any) -> bool:
    return getattr(recipe, "peft", None) is not None and recipe.peft.method == "lora"


def is_peft_model(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def check_peft(recipe: Any) -> None:
    """What a LoRA run needs, checked before anything is read or written."""
    import importlib.util

    if not uses_lora(recipe):
        return
    if importlib.util.find_spec("peft") is None:
        raise UserError("--peft lora needs the peft package: pip install peft")
    model = recipe.model
    if model.name_or_path.startswith("scratch:") or model.init == "random":
        fresh = model.name_or_path if model.name_or_path.startswith("scratch:") else "--init random"
        raise UserError(f"LoRA adapts pretrained weights, and {fresh} has none: pass a pretrained --model, or "
                        "train in full without --peft")


def _repeated_blocks(model: Any) -> tuple[str, Any]:
    """The model's stack of layers: the largest ModuleList whose items are all one class."""
    import torch

    stacks = [(name, module) for name, module in model.named_modules()
              if isinstance(module, torch.nn.ModuleList) and len(module) > 0
              and len({type(block) for block in module}) == 1]
    if not stacks:
        raise UserError(f"{type(model).__name__} has no stack of repeated layers for --target-modules auto: name "
                        "the layers, e.g. --target-modules query,value")
    return max(stacks, key=lambda item: (len(item[1]), sum(p.numel() for p in item[1].parameters())))


def _projection_types() -> tuple[type, ...]:
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's projections

    return torch.nn.Linear, Conv1D


def auto_target_modules(model: Any) -> str:
    """A regular expression (peft full-matches it against module names) of every linear projection in the
    repeated blocks, pooler and head excluded."""
    stack_name, stack = _repeated_blocks(model)
    inner = sorted({name for name, module in stack[0].named_modules() if isinstance(module, _projection_types())})
    if not inner:
        raise UserError(f"{type(model).__name__}'s layers have no linear projections for LoRA: pass --target-modules")
    return rf"{re.escape(stack_name)}\.\d+\.(?:{'|'.join(re.escape(name) for name in inner)})"


def head_modules(model: Any) -> list[str]:
    """What the task model adds to its base model (classifier, qa_outputs, score, pooler...), if it has
    weights of its own (weights tied to the input embeddings are the base's), and any other module the
    checkpoint had no weights for (BERT's pooler in an MLM checkpoint): left frozen and unsaved, it would be
    a random layer the adapter cannot be loaded without."""
    embeddings = model.get_input_embeddings().weight if hasattr(model, "get_input_embeddings") else None
    heads = _added_modules(model, embeddings)
    for key in getattr(model, "newly_initialised", []):
        name = key.rsplit(".", 1)[0]
        module = model.get_submodule(name) if name else None
        if name.split(".", 1)[0] in heads or module is None or any(w is embeddings for w in module.parameters()):
            continue
        heads.append(name)
    return heads


def _added_modules(model: Any, embeddings: Any) -> list[str]:
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    heads = []
    for name, module in model.named_children():
        if module is base:
            continue
        weights = list(module.parameters())
        if weights and not any(weight is embeddings for weight in weights):
            heads.append(name)
    return heads


def add_lora(model: Any, recipe: Any, pipeline_tag: str | None) -> Any:
    """``model`` wrapped in a PeftModel: adapters on the target layers, the head in full, the rest frozen."""
    from peft import LoraConfig, get_peft_model

    cfg = recipe.peft
    targets: Any = auto_target_modules(model) if cfg.target_modules == ["auto"] else cfg.target_modules
    to_save = head_modules(model) if cfg.modules_to_save is None else cfg.modules_to_save
    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, modules_to_save=to_save or None,
                        task_type=PEFT_TASK_TYPES.get(pipeline_tag or ""))
    if recipe.model.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # target modules not found, an unsupported layer type
        raise UserError(f"--peft lora: {first_line(err)}; pass --target-modules auto or names this model has "
                        "(e.g. query,value)") from None


def trainable_parameters(model: Any) -> dict[str, Any]:
    """all_results' record of what trained: counts and the share of the whole model."""
    trainable, total = model.get_nb_trainable_parameters()
    return {"trainable_parameters": int(trainable), "total_parameters": int(total),
            "trainable_percent": round(100 * trainable / total, 4) if total else 0.0}


def describe_trainable(counts: dict[str, Any]) -> str:
    return (f"LoRA: {counts['trainable_parameters']:,} trainable parameters of {counts['total_parameters']:,} "
            f"({counts['trainable_percent']:.2f}%)")


def save_adapter_extras(model: Any, tokenizer: Any, out: Path, merge: bool) -> None:
    """Beside the adapter peft saved: the task config, and with ``merge`` the merged model in ``out/merged``."""
    import copy

    base = model.get_base_model()
    config = copy.deepcopy(base.config)
    config.architectures = [type(base).__name__]  # the loaded base's config still names the base's class
    config.to_json_file(str(out / TASK_CONFIG))
    if merge:
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(str(out / MERGED_DIR))
        tokenizer.save_pretrained(str(out / MERGED_DIR))


def trained_head(path: str | Path) -> dict[str, Any]:
    """The head settings an adapter was trained with (from its task config), for loading its base to match."""
    import json

    config = Path(path) / TASK_CONFIG
    if not config.is_file():
        return {}
    saved = json.loads(config.read_text(encoding="utf-8"))
    return {key: saved[key] for key in ("num_labels", "id2label", "label2id", "problem_type", "pad_token_id")
            if key in saved and (key != "num_labels" or "id2label" not in saved)}


def load_trained_adapter(path: str | Path, model_class: Any) -> Any:
    """An adapter dir as a model: its base, with the head the adapter was trained for, and the adapter on it."""
    try:
        base = model_class.from_pretrained(adapter_base(path), use_safetensors=True, **trained_head(path))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the base model of the adapter in {path}: {first_line(err, 200)}") from None
    return load_adapter(base, path)


def merge_adapter_dir(path: str | Path, model_class: Any, target: Path) -> Path:
    """``ssl export --merge``: the adapter merged into its base, saved with the tokenizer as a plain model."""
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()  # the base's load report: the adapter supplies what it lacks
    transformers.utils.logging.disable_progress_bar()
    merged = load_trained_adapter(path, model_class).merge_and_unload()
    try:
        merged.save_pretrained(str(target))
        AutoTokenizer.from_pretrained(str(path)).save_pretrained(str(target))
    except OSError as err:
        raise UserError(f"cannot write the merged model into {target}: {err.strerror or first_line(err)}: pass "
                        "another --output-dir") from None
    return target


def is_adapter_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter directory was trained on (its adapter_config.json's base_model_name_or_path)."""
    import json

    config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{path}/adapter_config.json names no base model (base_model_name_or_path): "
                        "re-save the adapter with its base")
    return base


def load_adapter(model: Any, path: str | Path) -> Any:
    """A trained adapter directory onto its freshly loaded base model, trainable (``adapter_for_run`` decides)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=True)
    except (ValueError, RuntimeError, OSError) as err:  # a size mismatch: the head was trained for other labels
        raise UserError(f"cannot load the adapter in {path} onto its base: {first_line(err)}") from None


def adapter_for_run(model: Any, recipe: Any, training: bool) -> Any:
    """A loaded adapter (``--model`` an adapter dir) in the run: kept for evaluation and for more LoRA training
    (``--peft lora``); merged into its base for full fine-tuning."""
    return model.merge_and_unload() if training and not uses_lora(recipe) else model
