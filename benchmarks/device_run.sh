#!/usr/bin/env bash
# make bench-gpu: #23's accelerator run, in one call of about TOTAL_S seconds (default 480), on a GPU machine
# with no network. Here first, where PyPI is reachable: `make device-bundle` (benchmarks/device_bundle.py) packs
# what the machine lacks into .device/. Then one call, carrying .device:
#     bash benchmarks/device_run.sh            (the device tool: run, carry [".device"], timeout_s 560)
# It uses the machine's own python3 and torch, the bundle's wheels on PYTHONPATH, the bundle's data and MiniLM,
# and runs, each only while time is left, in #23's order:
#   1. bench_gpu.py: the bf16 ceiling, then every row's useful-token MFU, most important rows first;
#   2. bench_qa.py and bench_glue.py --only versus-grouped: MiniLM, ssl against the Trainer's best GPU mode;
#   3. bench_mlm.py (MLM and CLM): tokens/s against the Trainer at the same batch.
# Results go to $OUT/results.tar (refreshed after each bench, so a cut-short run keeps the finished ones) and the
# whole log to $OUT/log.txt; copy them into benchmarks/results/ and run benchmarks/report.py.
set -uo pipefail
TOTAL_S=${TOTAL_S:-480}
STEPS=${STEPS:-120}
SEEDS=${SEEDS:-2}
BUNDLE=${BUNDLE:-.device}
OUT=${OUT:-/tmp/ssl-device-out}
PYTHON=${PYTHON:-python3}
# CHECK_ON_CPU=1 rehearses the whole run where no GPU is (tiny models, fp32, small subsets): every step runs
CHECK_ON_CPU=${CHECK_ON_CPU:-}
GPU_ARGS=() QA_ARGS=() GLUE_ARGS=() MLM_ARGS=()
if [ -n "$CHECK_ON_CPU" ]; then
    GPU_ARGS=(--cpu-check) QA_ARGS=(--train-questions 120 --eval-questions 110) GLUE_ARGS=(--sst2-rows 200)
    MLM_ARGS=(--train-lines 200 --eval-lines 50)
fi
START=$SECONDS
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

say() { echo "[$((SECONDS - START)) s] $*"; }
left() { echo $((TOTAL_S - (SECONDS - START))); }
save() { tar -cf "$OUT/results.tar" -C "$SSL_BENCH_RESULTS" . 2>/dev/null; }

[ -d "$BUNDLE/wheels" ] || { echo "no $BUNDLE/wheels: run 'make device-bundle' where PyPI is reachable, and carry $BUNDLE"; exit 2; }
SITE=$(mktemp -d /tmp/ssl-site-XXXX)
$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$BUNDLE"/wheels/*.whl || exit 3
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HOME=/tmp/ssl-hf-home SSL_BENCH_DATA=/tmp/ssl-bench-data SSL_BENCH_MINILM=/tmp/ssl-minilm
export SSL_BENCH_RESULTS=/tmp/ssl-bench-results
PREFLIGHT='import torch, transformers, accelerate, datasets, pydantic, ssl_cli.cli
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__,
      "accelerate", accelerate.__version__, "datasets", datasets.__version__, "pydantic", pydantic.__version__)'
if ! $PYTHON -c "$PREFLIGHT"; then
    say "datasets ${BUNDLE}/wheels did not import: trying the fallback (an older pyarrow)"
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$BUNDLE"/wheels-fallback/*.whl || exit 3
    $PYTHON -c "$PREFLIGHT" || { say "ssl does not import here: see above"; exit 3; }
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
mkdir -p "$SSL_BENCH_DATA" "$SSL_BENCH_RESULTS"
tar -xJf "$BUNDLE/data.tar.xz" -C "$SSL_BENCH_DATA" || exit 3
$PYTHON benchmarks/device_bundle.py --unpack-model "$BUNDLE/minilm" "$SSL_BENCH_MINILM" || exit 3
say "set up"

# 1. MFU rows: about 55% of the time; the rows past their budget are listed as skipped
$PYTHON benchmarks/bench_gpu.py --steps "$STEPS" --budget-s $(( $(left) * 55 / 100 )) "${GPU_ARGS[@]}"
save
say "bench_gpu done"
# 2. MiniLM against the Trainer's best GPU mode (about 30 s a run on an H200)
if [ "$(left)" -gt 150 ]; then
    $PYTHON benchmarks/bench_qa.py --only versus-grouped --seeds "$SEEDS" "${QA_ARGS[@]}"
    save
    say "bench_qa done"
fi
if [ "$(left)" -gt 90 ]; then
    $PYTHON benchmarks/bench_glue.py --only versus-grouped --seeds "$SEEDS" --tasks sst2 "${GLUE_ARGS[@]}"
    save
    say "bench_glue done"
fi
# 3. pretraining tokens/s against the Trainer (one seed each)
for objective in mlm clm; do
    if [ "$(left)" -gt 60 ]; then
        $PYTHON benchmarks/bench_mlm.py --objective "$objective" --seeds 1 "${MLM_ARGS[@]}"
        save
        say "bench_mlm --objective $objective done"
    fi
done
say "finished; results: $OUT/results.tar ($(tar -tf "$OUT/results.tar" | grep -c json) results files)"
