"""``ssl generate``: sample from a causal LM (a ``pretrain-clm`` output or any ``*ForCausalLM`` checkpoint).

Sampling follows ``transformers``' ``generate``: ``temperature``, ``top_k``,
``top_p``, a fixed ``seed`` for repeatable samples, greedy decoding with
``--temperature 0``. The few-shot mode builds the prompt from examples, the
in-context learning the GPT-style seed lecture shows: ``K`` solved examples
(``input``/``output`` fields of a JSON-lines file) followed by the new input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, not_utf8
from ssl_cli.models import check_config_file, check_weights, position_embeddings, tokenizer_load_error, warn_remote_code


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 50
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    num_return_sequences: int = 1
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed {self.seed} is out of range: pass a seed from 0 to {2**32 - 1}")
        if self.temperature == 0 and self.num_return_sequences > 1:
            raise UserError(f"--temperature 0 decodes greedily, so all {self.num_return_sequences} sequences would be "
                            "the same: pass --num-return-sequences 1, or a temperature above 0 to sample")


def few_shot_prompt(examples_file: Path, shots: int, query: str, instruction: str = "") -> str:
    """``instruction``, then ``shots`` examples as "input: ...\\noutput: ...", then the query with an open output."""
    if not examples_file.is_file():
        raise UserError(f"examples file not found: {examples_file} (JSON lines with 'input' and 'output' fields)")
    examples = []
    try:
        lines = examples_file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(not_utf8(f"examples file {examples_file}")) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{examples_file}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or "input" not in record or "output" not in record:
            raise UserError(f"{examples_file}:{number}: each line needs 'input' and 'output' fields")
        examples.append(record)
    if len(examples) < shots:
        raise UserError(f"{examples_file} has {len(examples)} examples, fewer than --shots {shots}")
    blocks = [f"input: {e['input']}\noutput: {e['output']}" for e in examples[:shots]]
    head = f"{instruction.strip()}\n\n" if instruction.strip() else ""
    return head + "\n\n".join([*blocks, f"input: {query}\noutput:"])


def generate(model_dir: str, prompt: str, sampling: Sampling, trust_remote_code: bool = False) -> list[str]:
    """The continuations of ``prompt`` (the prompt itself not repeated)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    path = Path(model_dir).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"{model_dir} is not a model directory (no config.json): pass an output of ssl pretrain-clm")
    warn_remote_code(model_dir, trust_remote_code)
    _check_causal_lm_head(path)
    check_weights(str(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as err:  # tokenizers and transformers raise plain Exceptions for files they cannot parse
        raise tokenizer_load_error(path, err) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True, trust_remote_code=trust_remote_code)
    except (ValueError, OSError) as err:
        raise UserError(f"{model_dir} is not a causal language model ({str(err).splitlines()[0][:120]}); "
                        "generate needs a *ForCausalLM checkpoint such as a pretrain-clm output") from None
    set_seed(sampling.seed)
    encoded = tokenizer(prompt, return_tensors="pt")
    if encoded["input_ids"].shape[1] == 0:
        raise UserError("the prompt is empty: pass --prompt TEXT")
    _check_length(model.config, encoded["input_ids"].shape[1], sampling.max_new_tokens)
    options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "num_return_sequences": sampling.num_return_sequences,
                               "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id}
    if sampling.temperature > 0:
        options.update(do_sample=True, temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    else:
        options.update(do_sample=False)
    model.eval()
    with torch.inference_mode():
        output = model.generate(**encoded, **options)
    start = encoded["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True) for row in output]


def _check_causal_lm_head(path: Path) -> None:
    """The checkpoint must have been saved with a causal-LM head: a classifier or masked-LM output would load
    into ``AutoModelForCausalLM`` with a head that is random or was trained for another objective, and sample
    noise."""
    architectures = check_config_file(path / "config.json").get("architectures")
    if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise UserError(f"{path} was saved as {', '.join(architectures)}, which has no trained causal-LM head: "
                        "generate needs a *ForCausalLM model, such as an output of ssl pretrain-clm")


def _check_length(config: Any, prompt_tokens: int, new_tokens: int) -> None:
    positions = position_embeddings(config)
    if positions is not None and prompt_tokens + new_tokens > positions:
        raise UserError(f"the prompt is {prompt_tokens} tokens and --max-new-tokens {new_tokens}: together over the "
                        f"model's {positions} positions; shorten the prompt (fewer --shots) or lower --max-new-tokens")
