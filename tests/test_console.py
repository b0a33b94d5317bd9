"""A quiet console (no library progress bars unless --verbose), each gate verdict printed once, and
the run's log: RUN/logs/<verb>.log holds what the console showed, written as it goes."""

import io
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from genai import console
from tests.conftest import ROOT, genai_cli

QS = ROOT / "recipes" / "data" / "quickstart"
BAR = re.compile(r"it/s\]|s/it\]|%\|")  # what a tqdm line looks like


def bar_lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if BAR.search(line)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`genai train` of a seconds-long recipe, its output in pipes as in CI or `| tee`."""
    tmp = tmp_path_factory.mktemp("console")
    recipe = tmp / "small.yaml"
    recipe.write_text(f"""\
name: small
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS / "train.jsonl"}, format: alpaca, limit: 400}}]
  eval: [{{path: {QS / "test.jsonl"}, format: alpaca, limit: 16}}]
  max_length: 64
  cache_dir: {tmp / "cache"}
train:
  output_dir: {tmp / "runs"}
  max_steps: 10
  micro_batch_size: 4
  num_threads: 1
  logging_steps: 5
  eval_steps: 10
  exact_match: {{limit: 4, max_new_tokens: 4}}
eval:
  tasks: [quickstart_addition]
  limit: 8
  gate: [{{task: quickstart_addition, metric: "exact_match,strip", min: 0.0}}]
""")
    proc = genai_cli("train", recipe, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp / "runs" / "small").iterdir()
    return proc, run


def test_train_in_a_pipe_prints_no_progress_bars_and_logs_every_line(trained):
    proc, run = trained
    assert bar_lines(proc.stdout + proc.stderr) == []
    assert "step 10/10" in proc.stderr and f"run: {run}" in proc.stdout
    log = (run / "logs" / "train.log").read_text()
    assert log.startswith("===== ") and "genai train " in log.splitlines()[0]
    for line in (proc.stderr + proc.stdout).splitlines():  # every console line, time-stamped
        assert re.search(rf"^\d\d:\d\d:\d\d {re.escape(line.rstrip())}$", log, re.M), line


def test_eval_in_a_pipe_prints_no_bars_and_each_gate_verdict_once(trained):
    _, run = trained
    proc = genai_cli("eval", run, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert bar_lines(out) == []  # lm-eval's own bars ignore TQDM_DISABLE: the console drops them
    assert out.count("gate PASS: quickstart_addition exact_match,strip") == 1
    assert "eval: fine-tuned scored in" in proc.stderr
    log = (run / "logs" / "eval.log").read_text()
    assert "gate PASS: quickstart_addition" in log and "eval: base scored in" in log


def _tee(quiet: bool):
    screen, log = io.StringIO(), console.LogFile()
    return console.Tee(screen, log, quiet=quiet), screen, log


def lm_eval_style_bar(stream) -> None:
    from tqdm import tqdm

    for _ in tqdm(range(3), file=stream, disable=False, desc="Running loglikelihood requests", mininterval=0):
        pass


def test_quiet_tee_drops_progress_bars_but_keeps_lines(tmp_path):
    tee, screen, log = _tee(quiet=True)
    tee.write("before\n")
    lm_eval_style_bar(tee)
    print("after", file=tee)
    assert screen.getvalue() == "before\nafter\n"
    log.open(tmp_path / "x.log")  # lines written before the log is opened are kept for it
    log.close()
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert [line[9:] for line in lines[1:]] == ["before", "after"]


def test_verbose_tee_shows_bars_and_logs_their_last_frame(tmp_path):
    tee, screen, log = _tee(quiet=False)
    log.open(tmp_path / "x.log")
    lm_eval_style_bar(tee)
    log.close()
    assert bar_lines(screen.getvalue())
    logged = (tmp_path / "x.log").read_text().splitlines()[1:]
    assert len(logged) == 1 and "3/3" in logged[0] and "\r" not in logged[0]


def test_the_log_header_hides_secret_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["genai", "eval", "r.yaml", "eval.endpoint.api_key=sk-LEAK", "eval.limit=8"])
    log = console.LogFile()
    log.open(tmp_path / "x.log")
    log.close()
    header = (tmp_path / "x.log").read_text()
    assert "sk-LEAK" not in header and "eval.endpoint.api_key=***" in header and "eval.limit=8" in header


def test_run_log_outside_the_cli_tees_the_block_and_restores_the_streams(tmp_path):
    before = sys.stdout, sys.stderr
    with console.run_log(tmp_path, "train"):
        print("inside")
    print("outside")
    assert (sys.stdout, sys.stderr) == before
    assert (tmp_path / "logs" / "train.log").read_text().splitlines()[1][9:] == "inside"


def test_genai_run_prints_each_gate_verdict_once(tmp_path, monkeypatch, capsys):
    """`genai run`: the eval stage prints the table and verdicts; the gate stage does not repeat them."""
    import genai.evaluation.runner
    import genai.preflight
    import genai.report
    import genai.training.launch
    from genai.evaluation import results
    from genai.evaluation.results import build_table, check_gate
    from genai.pipeline import Context, gate_stage, run_pipeline
    from genai.recipe import GateRule, load_recipe
    from genai.runs import Run, new_run

    overrides = [f"train.output_dir={tmp_path}", "tracking.mlflow=false", "tracking.tensorboard=false"]
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", overrides)

    class Trained:
        def __init__(self, run):
            self.run_dir = run.path

    def fake_train(recipe, **_):
        run = new_run(recipe)
        run.write_recipe(recipe)
        run.write_manifest(recipe, metrics={"train_loss": 0.1})
        return Trained(run)

    def fake_eval(target, overrides, **_):
        res = {"base": {"results": {"t": {"acc,none": 0.5}}}, "tuned": {"results": {"t": {"acc,none": 0.7}}}}
        rules = [GateRule(task="t", metric="acc", min=0.6)]
        out = Run(Path(target)).eval_dir / recipe.eval.backend
        return genai.evaluation.runner.write_report(
            out, recipe, recipe.eval, res, build_table(res), check_gate(rules, res)
        )

    monkeypatch.setattr(genai.preflight, "preflight", lambda *a, **k: None)
    monkeypatch.setattr(genai.training.launch, "start_training", fake_train)
    monkeypatch.setattr(genai.evaluation.runner, "evaluate", fake_eval)
    monkeypatch.setattr(genai.report, "write_all", lambda *a, **k: None)
    monkeypatch.setattr(results, "_printed", set())

    outcome = run_pipeline(recipe, [], serve=False)
    out = capsys.readouterr()
    assert outcome.gate_passed is True
    assert (out.out + out.err).count("gate PASS: t acc,none = 0.7000 >= 0.6") == 1

    # Continued at the gate by a later command (the table not shown yet): the gate stage prints it.
    monkeypatch.setattr(results, "_printed", set())
    screen = io.StringIO()
    gate_stage(Context(recipe=recipe, overrides=[], console=Console(file=screen), run=Run(outcome.run_dir)))
    assert screen.getvalue().count("gate PASS: t acc,none") == 1
