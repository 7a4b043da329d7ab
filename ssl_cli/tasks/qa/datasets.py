"""Registered QA datasets: DRCD and CMRC 2018 from their official files, SQuAD v1.1/v2.0 on the Hub."""

from __future__ import annotations

from ssl_cli.data.registry import DatasetSource

_DRCD = "https://raw.githubusercontent.com/DRCKnowledgeTeam/DRCD/master"
_CMRC = "https://raw.githubusercontent.com/ymcui/cmrc2018/master/squad-style-data"

DATASETS = (
    DatasetSource(
        "drcd", "finetune-qa", "zh", "chinese",
        "Delta Reading Comprehension Dataset (Traditional Chinese Wikipedia), official files",
        files={
            "train": f"{_DRCD}/DRCD_training.json",
            "validation": f"{_DRCD}/DRCD_dev.json",
            "test": f"{_DRCD}/DRCD_test.json",
        },
    ),
    DatasetSource(
        "cmrc2018", "finetune-qa", "zh", "chinese",
        "CMRC 2018 span-extraction reading comprehension (Simplified Chinese), official files",
        files={
            "train": f"{_CMRC}/cmrc2018_train.json",
            "validation": f"{_CMRC}/cmrc2018_dev.json",
            "test": f"{_CMRC}/cmrc2018_trial.json",
        },
    ),
    DatasetSource("squad", "finetune-qa", "en", "squad", "SQuAD v1.1", hub_id="rajpurkar/squad"),
    DatasetSource("squad_v2", "finetune-qa", "en", "squad_v2", "SQuAD v2.0 (with unanswerable questions)",
                  hub_id="rajpurkar/squad_v2"),
)
