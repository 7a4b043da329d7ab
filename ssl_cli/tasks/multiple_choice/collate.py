"""Batches of questions: every choice of every question padded to one length, as (batch, choices, length)."""

from __future__ import annotations

from typing import Any

from ssl_cli.engine.collate import PaddingCollator, pad_rows


class ChoiceCollator(PaddingCollator):
    """``PaddingCollator`` for rows whose sequence columns hold one sequence per choice."""

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        present = [c for c in self.sequence_columns if c in rows[0]]
        choices = len(rows[0][present[0]])
        flat = {c: [seq for row in rows for seq in row[c]] for c in present}
        length = self.target_length(max(map(len, flat[present[0]])))
        batch: dict[str, Any] = {
            c: torch.from_numpy(pad_rows(flat[c], length, self.pad_values.get(c, 0))).view(len(rows), choices, length)
            for c in present
        }
        return self.add_scalars(batch, rows)
