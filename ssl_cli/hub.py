"""``--push-to-hub``: the output dir, model card included, uploaded through ``huggingface_hub``.

Everything a push needs (the Hub reachable, a login, a valid repository id) is checked before the data is
read, so that a run never trains for hours and then fails at the upload. A push that still fails at the end
leaves the trained model where it is, with the command that uploads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, first_line

#: What stays local: checkpoints (resume state, not a model), the run's lock, the JSON log's temporary files.
NOT_PUSHED = ["checkpoint-*/**", ".*", "*.tmp", "*.lock"]


def hub_repo_id(training: Any) -> str:
    """``hub_model_id``, or the output dir's name (the Trainer's default)."""
    return training.hub_model_id or Path(training.output_dir).expanduser().resolve().name


def check_hub_push(training: Any) -> None:
    """Fail now, in one line, if the push at the end could not happen."""
    if not training.push_to_hub:
        return
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = hub_repo_id(training)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--hub-model-id '{repo_id}' is not a Hub repository id ({first_line(err)}): pass "
                        "--hub-model-id user/name") from None
    if constants.HF_HUB_OFFLINE:
        raise UserError("--push-to-hub needs the Hugging Face Hub, and HF_HUB_OFFLINE is set: unset it, or train "
                        f"without --push-to-hub and upload later with `hf upload {repo_id} OUTPUT_DIR`")
    token = get_token()
    if token is None:
        raise UserError("--push-to-hub needs a Hugging Face login: run `hf auth login` or set HF_TOKEN")
    try:
        HfApi().whoami(token=token)
    except Exception as err:  # network errors and an invalid token arrive as several exception types
        raise UserError(f"--push-to-hub: the Hugging Face Hub does not answer with this login ({first_line(err)}): "
                        "check the network and the token (`hf auth whoami`), or train without --push-to-hub") from None


def push_output_dir(training: Any, out: Path) -> str:
    """Upload ``out`` (without checkpoints) to the run's repository; returns its URL."""
    from huggingface_hub import HfApi

    repo_id = hub_repo_id(training)
    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=training.hub_private_repo, exist_ok=True)
        api.upload_folder(repo_id=url.repo_id, folder_path=str(out), ignore_patterns=NOT_PUSHED,
                          commit_message=f"ssl: {os.path.basename(str(out))}")
    except Exception as err:
        raise UserError(f"the push to the Hub failed ({first_line(err)}); the model is saved in {out}: upload it "
                        f"with `hf upload {repo_id} {out}`") from None
    return f"https://huggingface.co/{url.repo_id}"
