"""Any dataset a user has: Hub ids through ``datasets.load_dataset`` (offline: from the datasets cache, or one
line), local folders in Hub layout, a user's own dataset registry, and registered names with local files."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ssl_cli.tasks.glue.data import sentiment
from tests.conftest import run_cli

TINY = ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml", "--num-train-epochs", "2"]


def reviews(n: int, seed: int) -> list[dict]:
    """Sentiment rows under a user's own column names (review, stars)."""
    return [{"review": row["sentence"], "stars": int(row["label"])} for row in sentiment(n, seed)]


def write_parquet(rows: list[dict], path) -> None:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))


def hub_folder(root, with_readme: bool = True):
    """A dataset folder as a Hub repository holds one: data/*.parquet, with a README whose header lists them."""
    write_parquet([{"sentence": r["review"], "label": r["stars"]} for r in reviews(600, 1)],
                  root / "data" / "train-00000-of-00001.parquet")
    write_parquet([{"sentence": r["review"], "label": r["stars"]} for r in reviews(80, 2)],
                  root / "data" / "validation-00000-of-00001.parquet")
    if with_readme:
        (root / "README.md").write_text(
            "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n"
            "  - split: validation\n    path: data/validation-*.parquet\n---\n# reviews\n", encoding="utf-8")
    return root


def results(out) -> dict:
    return json.loads((out / "all_results.json").read_text())


@pytest.mark.parametrize("with_readme", [True, False], ids=["readme-configs", "data-folder"])
def test_local_folder_in_hub_layout(tmp_path, with_readme):
    folder = hub_folder(tmp_path / "reviews", with_readme)
    out = tmp_path / "out"
    run_cli(*TINY, "--data", str(folder), "--output-dir", str(out), check=True)
    assert results(out)["eval_samples"] == 80 and results(out)["eval_accuracy"] > 0.7


def cache_as_hub_download(sources, hf_home, repo_id: str) -> None:
    """What ``load_dataset(repo_id)`` online leaves in the datasets cache (``<org>___<name>/default/<version>/
    <hash>/<name>-<split>.arrow``), written here by datasets' own Parquet builder from ``sources`` (a Hub-layout
    folder), since the Hub is out of reach."""
    import subprocess
    import sys

    org, name = repo_id.split("/")
    code = f"""
import os, shutil, datasets
from datasets.data_files import DataFilesDict
from datasets.packaged_modules.parquet.parquet import Parquet
files = DataFilesDict.from_patterns({{"train": ["data/train-*.parquet"], "validation": ["data/validation-*.parquet"]}},
                                    base_path={str(sources)!r})
Parquet(data_files=files, dataset_name={name!r}, hash="0123456789abcdef").download_and_prepare()
root = datasets.config.HF_DATASETS_CACHE
[config] = [d for d in os.listdir(os.path.join(root, {name!r})) if not d.endswith(".lock")]
os.makedirs(os.path.join(root, {f"{org}___{name}"!r}))
shutil.move(os.path.join(root, {name!r}, config), os.path.join(root, {f"{org}___{name}"!r}, "default"))
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HOME": str(hf_home)})


@pytest.mark.parametrize("command", ["finetune-glue", "pretrain-clm"])
def test_hub_id_offline_loads_from_the_datasets_cache(tmp_path, command):
    hf_home = tmp_path / "hf"
    cache_as_hub_download(hub_folder(tmp_path / "download"), hf_home, "acme/reviews")
    out = tmp_path / "out"
    from ssl_cli.tasks import all_tasks

    args = TINY if command == "finetune-glue" else [command, "--recipe", all_tasks()[command].tiny_recipe]
    run_cli(*args, "--data", "acme/reviews", "--output-dir", str(out), check=True, env={"HF_HOME": str(hf_home)})
    if command == "finetune-glue":
        assert results(out)["eval_samples"] == 80 and results(out)["eval_accuracy"] > 0.7
    else:  # a Hub text dataset for pretraining: its text column read, its validation split scored
        assert results(out)["eval_samples"] > 0 and results(out)["perplexity"] > 0


def test_tag_pos_conll2003_by_name_from_the_datasets_cache(tmp_path):
    """``tag-pos --data conll2003``: the Hub's eriktks/conll2003 (tokens, ner_tags as ClassLabel ids), scored with
    entity F1."""
    import datasets

    from ssl_cli.tasks.tagging.data import english_ner

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    features = datasets.Features({"id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    sources = tmp_path / "download"
    for split, (n, seed) in {"train": (500, 1), "validation": (60, 2)}.items():
        rows = [{"id": str(i), "tokens": [w for w, _ in sentence], "ner_tags": [names.index(t) for _, t in sentence]}
                for i, sentence in enumerate(english_ner(n, seed))]
        (sources / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=features).to_parquet(str(sources / "data" / f"{split}-0.parquet"))
    hf_home = tmp_path / "hf"
    cache_as_hub_download(sources, hf_home, "eriktks/conll2003")
    out = tmp_path / "out"
    run_cli("tag-pos", "--recipe", "recipes/pos/tiny-en-offline.yaml", "--data", "conll2003", "--output-dir",
            str(out), check=True, env={"HF_HOME": str(hf_home)})
    assert results(out)["eval_samples"] == 60 and results(out)["eval_f1"] > 0.5, results(out)


@pytest.mark.parametrize("command", ["finetune-glue", "pretrain-clm", "tag-pos"])
def test_hub_id_offline_and_not_cached_is_one_line(tmp_path, command):
    proc = run_cli(command, "--data", "Salesforce/wikitext:wikitext-2-raw-v1", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Salesforce/wikitext" in lines[0] and "offline mode is set" in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_misspelt_name_offline_says_did_you_mean(tmp_path):
    proc = run_cli("finetune-qa", "--data", "drdc", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2 and "did you mean 'drcd'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_user_dataset_registry_with_its_own_columns(tmp_path):
    """dataset_info.yaml in the working directory (or --dataset-info FILE): files relative to it, columns mapped to
    the task's --*-column keys, and its names in "did you mean"."""
    from ssl_cli.tasks.glue.data import write_table

    data = tmp_path / "data"
    write_table(reviews(600, 1), data / "reviews_train.csv")
    write_table(reviews(80, 2), data / "reviews_dev.csv")
    registry = tmp_path / "registry.yaml"
    registry.write_text("my_reviews:\n  task: finetune-glue\n  files: {train: data/reviews_train.csv, validation: "
                        "data/reviews_dev.csv}\n  columns: {text_column: review, label_column: stars}\n")
    out = tmp_path / "out"
    run_cli(*TINY, "--data", "my_reviews", "--dataset-info", str(registry), "--output-dir", str(out), check=True)
    assert results(out)["eval_samples"] == 80 and results(out)["eval_accuracy"] > 0.7
    saved = (out / "recipe.yaml").read_text()
    assert "text_column: review" in saved and "label_column: stars" in saved  # the run says what it read

    shutil.copy(registry, tmp_path / "dataset_info.yaml")
    proc = run_cli(*TINY, "--data", "my_reviws", "--dataset-info", str(tmp_path / "dataset_info.yaml"),
                   "--output-dir", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "did you mean 'my_reviews'" in proc.stderr
    proc = run_cli("tag-pos", "--data", "my_reviews", "--dataset-info", str(registry), "--output-dir",
                   str(tmp_path / "o3"))
    assert proc.returncode == 2 and "is for `ssl finetune-glue`, not `ssl tag-pos`" in proc.stderr


def test_user_registry_entry_errors_are_one_line(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text("mine:\n  file_nam: x.csv\n")
    proc = run_cli(*TINY, "--data", "mine", "--dataset-info", str(registry), "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2 and "unknown key 'file_nam' (did you mean 'file_name'?)" in proc.stderr
    registry.write_text("mine:\n  file_name: x.csv\n  columns: {txt_column: a}\n")
    (tmp_path / "x.csv").write_text("sentence,label\na,1\n")
    proc = run_cli(*TINY, "--data", "mine", "--dataset-info", str(registry), "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2 and "'txt_column' (did you mean 'text_column'?)" in proc.stderr


def test_registered_name_with_local_files_stays_offline(tmp_path):
    """recipes/glue/sst2-bert-base-cased.yaml names glue/sst2; with --train-file the name brings its task facts
    (labels, metric) and the Hub is never asked for."""
    from ssl_cli.tasks.glue.data import write_task

    files = write_task("sentiment", tmp_path / "sst2", 600, 80)
    out = tmp_path / "out"
    run_cli(*TINY, "--data", "glue/sst2", "--train-file", str(files["train"]), "--validation-file",
            str(files["dev"]), "--output-dir", str(out), check=True)
    assert results(out)["eval_samples"] == 80
