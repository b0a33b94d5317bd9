"""Inside the SageMaker training container: `python -m genai.sagemaker.entry` (or sm_entry.py).

Reads the container contract (/opt/ml/input/config/*.json, SM_* variables), points the recipe's
data at the input channels, trains with the same code as `genai train`, writes the artifact and
manifest to /opt/ml/model and checkpoints to /opt/ml/checkpoints (synced with S3 by SageMaker),
and after a spot interruption resumes from what is there. A failure is written to
/opt/ml/output/failure and the process exits non-zero.

Metric lines (`genai-metric NAME=VALUE`, read by a tuning job's MetricDefinitions): each held-out
loss as training logs it, and, in a tuning job (hyperparameter genai_objective), the sweep's
objective after training; a task/metric objective is scored by genai's eval of the run first.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path

CHANNELS_FILE = "channels.json"  # written by submit.py: {channel: {"source": "train"|"eval", "index": i, "name": file}}
RECIPE_NAME = "recipe.yaml"
METRIC_PREFIX = "genai-metric"
OBJECTIVE_HP = "genai_objective"  # set by `genai sweep --sagemaker`: the sweep's objective, scored after training
POLL_S = 2.0


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


def hyperparameters() -> dict:
    """The job's hyperparameters (SM_HPS: values already JSON-decoded by the container)."""
    return json.loads(os.environ.get("SM_HPS", "{}") or "{}")


def job_overrides(root: Path, code: Path) -> list[str]:
    """Recipe overrides that map data to channels and outputs to the /opt/ml tree."""
    out = [f"train.output_dir={root / 'model'}", f"train.checkpoint_dir={root / 'checkpoints'}"]
    channels = json.loads((code / CHANNELS_FILE).read_text()) if (code / CHANNELS_FILE).exists() else {}
    for channel, where in channels.items():
        path = channel_dir(channel) / where["name"]
        out.append(f"data.{where['source']}.{where['index']}.path={path}")
    for key, value in hyperparameters().items():  # extra overrides passed as hyperparameters: {"train.max_steps": 100}
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
    main_rank = os.environ.get("RANK", "0") == "0"  # torchrun starts this entry on every process
    with eval_loss_lines(run_dir / "metrics.jsonl", enabled=main_rank):
        start_training(recipe, run_dir=run_dir, checkpoint=ckpts[-1] if ckpts else None)
    objective = hyperparameters().get(OBJECTIVE_HP)
    if objective and main_rank:
        print_objective(run_dir, str(objective))
    return run_dir


def metric_line(name: str, value: float) -> str | None:
    """`genai-metric NAME=VALUE` (None for a value a tuning job cannot read: nan, inf)."""
    value = float(value)
    return f"{METRIC_PREFIX} {name}={value!r}" if math.isfinite(value) else None


def metric_regex(name: str) -> str:
    """The MetricDefinitions regex for `name`'s metric lines: its one group captures the value."""
    return f"{METRIC_PREFIX} {re.escape(name)}=([-+0-9.eE]+)"


def emit(name: str, value: float) -> None:
    """Print one metric line to stdout (the job's log, which the tuning job reads)."""
    line = metric_line(name, value)
    if line is not None:
        print(line, flush=True)


def _eval_losses(metrics: Path) -> list[float]:
    """Every held-out loss metrics.jsonl holds so far (a torn last line is skipped)."""
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("eval_loss"), (int, float)):
            out.append(float(record["eval_loss"]))
    return out


@contextmanager
def eval_loss_lines(metrics: Path, *, enabled: bool = True, poll_s: float = POLL_S):
    """While training runs: a metric line for each held-out loss the run logs (read from its
    metrics.jsonl, so training itself is untouched); the rest when training ends."""
    if not enabled:
        yield
        return
    seen = len(_eval_losses(metrics))  # a restarted job: its earlier losses were printed before
    stop = threading.Event()

    def drain() -> None:
        nonlocal seen
        losses = _eval_losses(metrics)
        for loss in losses[seen:]:
            emit("eval_loss", loss)
        seen = max(seen, len(losses))

    def watch() -> None:
        while not stop.wait(poll_s):
            drain()

    thread = threading.Thread(target=watch, name="genai-metric-lines", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drain()


def print_objective(run_dir: Path, objective: str) -> float:
    """The sweep's objective for this run, printed as metric lines: eval_loss from the manifest, or a
    task/metric scored by genai's eval of the run (each of its tuned metrics printed too)."""
    from genai.errors import GenaiError
    from genai.sweeps.trials import TrialFailed, objective_value

    if objective != "eval_loss":
        from genai.evaluation.runner import evaluate
        from genai.runs import Run

        evaluate(str(run_dir), [])
        for _, table in Run(run_dir).eval_tables():
            for row in table.get("rows", []):
                if isinstance(row.get("tuned"), (int, float)):
                    emit(f"{row.get('task')}/{row.get('metric')}", row["tuned"])
    try:
        value = objective_value(run_dir, objective)
    except TrialFailed as exc:
        raise GenaiError(
            f"sweep.objective: {exc}", hint="name a metric the run produces (eval_loss, or task/metric)"
        ) from None
    emit("objective", value)
    return value


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
