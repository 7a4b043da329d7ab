"""Padding-free training batches: a batch's sequences end to end in one row, attended one by one.

On a GPU, dynamic padding still computes padding (a length-grouped batch of
SQuAD windows or SST-2 sentences is 10-40% pad), and the step's time follows
the padded shape. Here the padded batch the task's collator builds is
flattened, as transformers' ``DataCollatorWithFlattening`` lays it out: its
real tokens in one row, ``position_ids`` restarting at every sequence, and the
sequences' boundaries as ``cu_seq_lens_q/k`` (cumulative lengths) with their
longest, ``max_length_q/k``. The model's attention is swapped for
``varlen_attention``, which attends within each sequence only: FlashAttention-2
(``flash-attn``) where it is installed on a CUDA device, else PyTorch's SDPA on a
nested (jagged) tensor, which runs the varlen flash or memory-efficient kernels
on a GPU. Every layer then computes real tokens only. On a CPU (forced on: it
is off there by default) SDPA runs over the row with a block-diagonal mask.

The heads still see the usual padded layout: a hook on the encoder scatters its
output back to (rows, longest, hidden), so the pooler's first token, the QA and
tagging heads and every loss read exactly the positions they read in a padded
batch (padding positions hold zeros, not the padded model's hidden states of
pad tokens, which no label reads).

Whether a model honours all this is not assumed: before training,
``padding_free_position_offset`` compares a few rows padded and padding-free,
in eval mode, and the run stays padded if the outputs differ (DeBERTa's
relative positions, models without ``.encoder``, attention that ignores the
interface). On a CPU the present levers (``padding_microbatches``,
``pack_sequences``) stay: they are faster there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ssl_cli.engine.collate import WrappingCollator
from ssl_cli.engine.packing import PACKED_EXAMPLES, PACKED_TOKENS, model_inputs, on_device, position_offsets

VARLEN = "ssl_varlen"
#: A static-shaped batch's own (rows, longest row, real tokens): taken off the model's inputs before its forward
#: (``PaddingFree``), so that the compiled layers never see these changing numbers.
LAYOUT = "ssl_padded_layout"
#: The inputs a model embeds token by token: flattened with the tokens. Everything else (labels, answer
#: positions) stays in the padded layout the heads read.
TOKEN_INPUTS = ("input_ids", "token_type_ids")


def flatten_batch(batch: dict[str, Any], position_offset: int, shape: StaticTokenShape | None = None) -> dict[str, Any]:
    """A padded batch (right-padded, with ``attention_mask``) as one padding-free row (see the module docstring),
    filled out to ``shape`` where one is given (``StaticTokenShape``)."""
    import torch

    mask = batch["attention_mask"].bool()
    lengths = mask.sum(dim=1)
    flat = {k: v for k, v in batch.items() if k != "attention_mask" and k not in TOKEN_INPUTS}
    for column in TOKEN_INPUTS:
        if column in batch:
            flat[column] = batch[column][mask].unsqueeze(0)
    width = mask.shape[1]
    positions = torch.arange(width).expand_as(mask) + position_offset
    flat["position_ids"] = positions[mask].unsqueeze(0)
    cumulative = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cumulative[1:] = lengths.cumsum(0)
    longest = int(lengths.max())
    flat.update(cu_seq_lens_q=cumulative, cu_seq_lens_k=cumulative, max_length_q=longest, max_length_k=longest)
    flat[PACKED_EXAMPLES] = len(lengths)
    flat[PACKED_TOKENS] = int(cumulative[-1])
    return flat if shape is None else shape.fill(flat, position_offset)


FILLER_SEQUENCE = 128  # tokens at most in a filler sequence: its attention costs its length squared


class StaticTokenShape:
    """One shape for every padding-free batch of a run (``training.static_token_batches``), so that compiled
    training sees a single shape and CUDA graphs record once.

    A batch's real tokens (at most ``most_tokens``, the fullest batch's) are followed by filler sequences, so
    that every batch holds ``tokens`` tokens in ``sequences`` sequences and says its longest is ``longest``
    (the model computes the fillers, the price of one shape). Fillers are short
    (``FILLER_SEQUENCE``: their attention costs little), never empty (varlen kernels are then given true
    bounds), at the position offset (a position every model has), and attend only to themselves: no real token
    sees them, and the encoder's output drops them before the heads (``LAYOUT``).
    """

    def __init__(self, most_tokens: int, most_rows: int, longest_row: int) -> None:
        self.sequences = most_rows + -(-most_tokens // FILLER_SEQUENCE) + 1
        self.tokens = most_tokens + self.sequences  # room for at least one filler token per filler sequence
        fewest_fillers = self.sequences - most_rows
        self.longest = max(longest_row, -(-self.tokens // fewest_fillers))

    def fill(self, flat: dict[str, Any], position_offset: int) -> dict[str, Any]:
        """``flat`` (one padding-free row) filled out to this shape, with its own layout under ``LAYOUT``."""
        import torch

        rows, real = flat[PACKED_EXAMPLES], flat[PACKED_TOKENS]
        fillers, spare = self.sequences - rows, self.tokens - real
        if fillers < 1 or spare < fillers:
            raise ValueError(f"a batch of {rows} rows and {real} tokens does not fit a static shape of "
                             f"{self.sequences} sequences and {self.tokens} tokens")
        sizes = torch.full((fillers,), spare // fillers, dtype=torch.int32)
        sizes[: spare % fillers] += 1
        for column in (*TOKEN_INPUTS, "position_ids"):
            if column in flat:
                value = position_offset if column == "position_ids" else 0
                flat[column] = torch.cat([flat[column], flat[column].new_full((1, spare), value)], dim=1)
        cumulative = torch.cat([flat["cu_seq_lens_q"], real + sizes.cumsum(0, dtype=torch.int32)])
        flat[LAYOUT] = (rows, flat["max_length_q"], real)
        flat.update(cu_seq_lens_q=cumulative, cu_seq_lens_k=cumulative, max_length_q=self.longest,
                    max_length_k=self.longest)
        return flat


class FlatteningCollator(WrappingCollator):
    """``inner``'s padded batches, flattened (``flatten_batch``), for the model ``switch`` made padding-free
    (``restore`` switches it back once training is done)."""

    def __init__(self, inner: Any, position_offset: int, switch: PaddingFree | None = None) -> None:
        super().__init__(inner)
        self.position_offset = position_offset
        self.switch = switch
        self.shape: StaticTokenShape | None = None  # set by batching.static_token_batches

    def restore(self) -> None:
        if self.switch is not None:
            self.switch.restore()
            self.switch = None

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        batch = self.inner(rows)
        if "attention_mask" not in batch or "input_ids" not in batch:
            return batch
        return flatten_batch(dict(batch), self.position_offset, self.shape)


def varlen_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention within each sequence of a flattened row (query: 1 x heads x tokens x head size), given
    ``cu_seq_lens_q``; a padded batch (evaluation) goes to PyTorch's SDPA as usual."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    offsets = kwargs.get("cu_seq_lens_q")
    if offsets is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.is_cuda and _flash_attention_installed():
        from transformers.integrations.flash_attention import flash_attention_forward

        return flash_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling, **kwargs)
    import torch

    offsets = offsets.to(device=query.device, dtype=torch.int64)
    if query.device.type == "cpu":
        return masked_attention(query, key, value, offsets, dropout, scaling), None
    return jagged_attention(query, key, value, offsets, dropout, scaling, kwargs.get("max_length_q")), None


def jagged_attention(query: Any, key: Any, value: Any, offsets: Any, dropout: float, scaling: float | None,
                     longest: int | None) -> Any:
    """SDPA on nested (jagged) tensors, one sequence each: the accelerators' varlen flash or memory-efficient
    kernels. In and out: 1 x heads x tokens x size, out transposed to 1 x tokens x heads x size."""
    import torch
    import torch.nn.functional as F

    # the lengths' bounds given, not read from the device: reading them would make the host wait every layer
    bounds = {"min_seqlen": 1, "max_seqlen": longest} if longest else {}

    def jagged(x: Any) -> Any:  # 1 x heads x tokens x size -> sequences x heads x (ragged) x size
        values = x[0].transpose(0, 1).contiguous()
        return torch.nested.nested_tensor_from_jagged(values, offsets, **bounds).transpose(1, 2)

    out = F.scaled_dot_product_attention(jagged(query), jagged(key), jagged(value), dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).values().unsqueeze(0)


def masked_attention(query: Any, key: Any, value: Any, offsets: Any, dropout: float, scaling: float | None) -> Any:
    """SDPA over the whole row, each token masked to its own sequence: a CPU's path (its nested-tensor SDPA falls
    back to a prototype layout that gradient checkpointing cannot save). Same shapes as ``jagged_attention``."""
    import torch
    import torch.nn.functional as F

    lengths = offsets[1:] - offsets[:-1]
    sequence = torch.repeat_interleave(torch.arange(len(lengths), device=query.device), lengths,
                                       output_size=query.shape[2])
    mask = (sequence[:, None] == sequence[None, :])[None, None]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2)


def _flash_attention_installed() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


def register_varlen_attention() -> None:
    """Make ``VARLEN`` an attention implementation transformers models can be switched to (masks: SDPA's)."""
    import logging

    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    # transformers' tracing check on a nested tensor calls torch.fx.is_fx_tracing, which warns that it is
    # deprecated: a line on every run that tells the user nothing
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    AttentionInterface.register(VARLEN, varlen_attention)
    AttentionMaskInterface.register(VARLEN, sdpa_mask)


def repad_encoder_output(output: Any, kwargs: dict[str, Any], layout: tuple[int, int, int] | None) -> Any:
    """A flattened row's encoder output scattered back to rows x longest x hidden; ``layout``: a static-shaped
    batch's (rows, longest, real tokens), its fillers dropped."""
    offsets = kwargs.get("cu_seq_lens_q")
    if offsets is None:
        return output
    import torch

    hidden = output.last_hidden_state[0]  # tokens x hidden
    offsets = offsets.to(hidden.device, torch.int64)
    if layout is not None:
        rows, longest, tokens = layout
        hidden, offsets = hidden[:tokens], offsets[: rows + 1]
    else:
        rows, tokens = len(offsets) - 1, hidden.shape[0]
        longest = int(kwargs.get("max_length_q") or (offsets[1:] - offsets[:-1]).max())
    # each token's place in the padded layout, computed on the device without reading it back (a boolean mask
    # index would make the host wait for the device)
    row = torch.repeat_interleave(torch.arange(rows, device=hidden.device), offsets[1:] - offsets[:-1],
                                  output_size=tokens)
    place = row * longest + torch.arange(tokens, device=hidden.device) - offsets[row]
    padded = hidden.new_zeros(rows * longest, hidden.shape[-1]).index_copy(0, place, hidden)
    output.last_hidden_state = padded.view(rows, longest, hidden.shape[-1])
    return output


class PaddingFree:
    """A model switched to padding-free batches, and back (``restore``) before it is evaluated padded at the end
    or saved: its config then names its own attention implementation again."""

    def __init__(self, model: Any) -> None:
        register_varlen_attention()
        self.model = model = _transformers_model(model)
        self.encoder = encoder_of(model)
        self.previous = model.config._attn_implementation
        model.set_attn_implementation(VARLEN)
        self.layout: tuple[int, int, int] | None = None  # the batch in the model's forward, if static-shaped
        self.hooks = [model.register_forward_pre_hook(self._take_layout, with_kwargs=True),
                      self.encoder.register_forward_hook(self._repad, with_kwargs=True)]

    def _take_layout(self, module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        self.layout = kwargs.pop(LAYOUT, None)
        return args, kwargs

    def _repad(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        return repad_encoder_output(output, kwargs, self.layout)

    def restore(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.model.set_attn_implementation(self.previous)


def _transformers_model(model: Any) -> Any:
    """The transformers model itself, inside a peft (LoRA) wrapper."""
    return model.get_base_model() if hasattr(model, "peft_config") and hasattr(model, "get_base_model") else model


def encoder_of(model: Any) -> Any:
    """The module whose output is the last hidden state, before pooler and heads; None where there is none."""
    model = _transformers_model(model)
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    return encoder if encoder is not None and hasattr(encoder, "forward") else None


def flattenable(inner: Any, rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``inner`` pads these rows as one sequence per row (not several, as multiple choice does)."""
    return bool(rows) and "input_ids" in rows[0] and one_sequence_per_row(inner(list(rows[:2])))


def one_sequence_per_row(batch: dict[str, Any]) -> bool:
    """Whether a padded batch holds one sequence per row: a 2D attention mask."""
    mask = batch.get("attention_mask")
    return mask is not None and mask.dim() == 2


def padding_free_position_offset(model: Any, inner: Any, rows: Sequence[dict[str, Any]]) -> int | None:
    """The position offset at which ``model`` gives ``rows`` padding-free the outputs it gives them padded (0 for
    BERT-like models, the padding index + 1 for RoBERTa-like ones); None if none does, or the model cannot be
    switched (no encoder, no attention interface). The model is left as it was."""
    import torch

    rows = [row for row in rows if len(row.get("input_ids", ())) > 1][:4]
    if len(rows) < 2 or encoder_of(model) is None:
        return None
    padded_batch = dict(inner(rows))
    if not one_sequence_per_row(padded_batch):
        return None
    candidates = position_offsets(_transformers_model(model).config)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            padded = _logits(model(**on_device(model_inputs(padded_batch), device)))
            switched = PaddingFree(model)
            try:
                for offset in candidates:
                    flat = _logits(model(**on_device(model_inputs(flatten_batch(padded_batch, offset)), device)))
                    if all(_same_outputs(a, b, padded_batch["attention_mask"]) for a, b in zip(padded, flat,
                                                                                                strict=True)):
                        return offset
            finally:
                switched.restore()
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, NotImplementedError):
        return None
    finally:
        model.train(was_training)
    return None


def _logits(output: Any) -> list[Any]:
    """The task outputs of a model call: logits, or a QA head's start and end logits."""
    return [output[name] for name in ("logits", "start_logits", "end_logits") if output.get(name) is not None]


def _same_outputs(padded: Any, flat: Any, mask: Any) -> bool:
    """Logits equal where the padded batch has real tokens (per-token outputs), or everywhere (per row)."""
    import torch

    if padded.shape != flat.shape:
        return False
    if padded.dim() >= 2 and padded.shape[1] == mask.shape[1]:
        keep = mask.bool().to(padded.device)
        padded, flat = padded[keep], flat[keep]
    return torch.allclose(padded.float(), flat.float(), rtol=1e-3, atol=1e-4)
