"""Inside the SageMaker training container: `python -m genai.sagemaker.entry` (or sm_entry.py).

Reads the container contract (/opt/ml/input/config/*.json, SM_* variables), points the recipe's
data at the input channels, trains with the same code as `genai train`, writes the artifact and
manifest to /opt/ml/model and checkpoints to /opt/ml/checkpoints (synced with S3 by SageMaker),
and after a spot interruption resumes from what is there. A failure is written to
/opt/ml/output/failure and the process exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

CHANNELS_FILE = "channels.json"  # written by submit.py: {channel: {"source": "train"|"eval", "index": i, "name": file}}
RECIPE_NAME = "recipe.yaml"


def opt_ml() -> Path:
    """The container's /opt/ml ($GENAI_OPT_ML in tests)."""
    return Path(os.environ.get("GENAI_OPT_ML", "/opt/ml"))  # tests emulate the tree elsewhere


def channel_dir(name: str) -> Path:
    """Where SageMaker mounted an input channel."""
    env = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    return Path(env) if env else opt_ml() / "input" / "data" / name


def code_dir() -> Path:
    """The job's source folder (genai's code, the recipe, the channel map)."""
    return Path(os.environ.get("SM_SOURCE_DIR") or Path(__file__).resolve().parents[2])


def job_overrides(root: Path, code: Path) -> list[str]:
    """Recipe overrides that map data to channels and outputs to the /opt/ml tree."""
    out = [f"train.output_dir={root / 'model'}", f"train.checkpoint_dir={root / 'checkpoints'}"]
    channels = json.loads((code / CHANNELS_FILE).read_text()) if (code / CHANNELS_FILE).exists() else {}
    for channel, where in channels.items():
        path = channel_dir(channel) / where["name"]
        out.append(f"data.{where['source']}.{where['index']}.path={path}")
    hps = json.loads(os.environ.get("SM_HPS", "{}") or "{}")
    for key, value in hps.items():  # extra overrides passed as hyperparameters: {"train.max_steps": 100}
        if "." in key:
            out.append(f"{key}={value}")
    return out


def run(root: Path | None = None) -> Path:
    """Train the job's recipe into /opt/ml/model, resuming from /opt/ml/checkpoints if a checkpoint is there."""
    from genai.recipe import load_recipe
    from genai.training.checkpoint import list_checkpoints
    from genai.training.launch import start_training

    root = root or opt_ml()
    code = code_dir()
    recipe = load_recipe(code / RECIPE_NAME, job_overrides(root, code))
    run_dir = root / "model"
    ckpts = list_checkpoints(root / "checkpoints")
    if ckpts:  # a restarted (spot) job: SageMaker restored /opt/ml/checkpoints from S3
        print(f"genai: resuming from {ckpts[-1]}", flush=True)
    if (run_dir / "manifest.json").exists():
        (run_dir / "manifest.json").unlink()  # a leftover from an earlier attempt; rewritten at the end
    start_training(recipe, run_dir=run_dir, checkpoint=ckpts[-1] if ckpts else None)
    return run_dir


def main() -> int:
    """The container's entry point: train, or write the failure and exit non-zero."""
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - everything must reach /opt/ml/output/failure
        from genai.errors import GenaiError

        message = str(exc) if isinstance(exc, GenaiError) else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        failure = opt_ml() / "output" / "failure"
        try:
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(message[:1000000])
        except OSError:
            pass
        print(f"error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, GenaiError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
