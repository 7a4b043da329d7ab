"""``ssl env``: what a bug report needs (versions, devices, Accelerate config)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def accelerate_config_path() -> Path | None:
    """The config `accelerate launch` would read by default, if any."""
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    path = Path(os.environ.get("ACCELERATE_CONFIG_FILE", Path(home) / "accelerate" / "default_config.yaml"))
    return path if path.is_file() else None


def print_env() -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from ssl_cli import __version__
    from ssl_cli.compat import cpu_has_native_bf16
    from ssl_cli.engine.devices import cpu_bf16_matmul_speedup

    table = Table(title="ssl env", show_header=False)
    rows = [("ssl", __version__), ("python", platform.python_version()), ("platform", platform.platform())]
    rows += [(p, _version(p)) for p in ("torch", "transformers", "datasets", "accelerate", "tokenizers", "evaluate")]
    rows.append(("cpu threads", str(torch.get_num_threads())))
    rows.append(("cpu bf16 (AVX512-BF16/AMX)", str(cpu_has_native_bf16())))
    rows.append(("cpu bf16 matmul vs fp32 (measured)", f"{cpu_bf16_matmul_speedup():.2g}x"))
    rows.append(("allocator for training", _training_allocator()))
    rows.append(("cuda", f"{torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else "not available"))
    if torch.cuda.is_available():
        rows += [(f"cuda:{i}", torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]
    if torch.cuda.is_available():  # training.padding_free's attention kernel there
        flash = _version("flash-attn")
        rows.append(("flash-attn", flash if flash != "not installed"
                     else "not installed (padding-free rows use PyTorch's nested-tensor SDPA)"))
    rows.append(("mps", str(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())))
    config = accelerate_config_path()
    rows.append(("accelerate config", str(config) if config else "none (defaults: single process)"))
    rows.append(("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "unset")))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _training_allocator() -> str:
    """What a training command will run on: the launcher's own decision (ssl_cli.allocator), not a copy of it."""
    from ssl_cli.allocator import allocator_environment, preloaded_allocator
    from ssl_cli.errors import UserError

    try:
        env = allocator_environment(os.environ)
    except UserError as exc:
        return str(exc)
    if env is not None:
        return f"preloaded by ssl: {preloaded_allocator(env)}"
    already = preloaded_allocator(os.environ)
    if already:
        return f"already in LD_PRELOAD: {already}"
    return "glibc, tuned (apt-get install libtcmalloc-minimal4: faster)"
