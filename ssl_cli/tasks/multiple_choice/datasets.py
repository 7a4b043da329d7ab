"""Registered multiple-choice datasets on the Hugging Face Hub: SWAG, RACE and C3."""

from __future__ import annotations

from ssl_cli.data.registry import DatasetSource

TASK = "multiple-choice"
DATASETS = (
    DatasetSource("swag", TASK, "en", "accuracy", "SWAG: the likeliest continuation of a video caption (4 endings)",
                  hub_id="allenai/swag", hub_config="regular"),
    DatasetSource("race", TASK, "en", "accuracy", "RACE: English exam reading comprehension, middle and high school",
                  hub_id="ehovy/race", hub_config="all"),
    DatasetSource("c3", TASK, "zh", "accuracy", "C3: Chinese exam reading comprehension (mixed-genre passages)",
                  hub_id="dataset-org/c3", hub_config="mixed"),
)
