"""Gate verdicts, reproducibility, user suites, and one clear error per bad input."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import genai_cli

FAST = ["eval.tasks=[quickstart_addition]", "eval.limit=8", "eval.gate=[]"]


def test_failing_gate_exits_3_and_says_why(quickstart_run):
    proc = genai_cli(
        "eval", quickstart_run, *FAST, "eval.gate=[{task: quickstart_addition, metric: exact_match, min: 1.01}]"
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "gate FAIL: quickstart_addition exact_match,strip" in proc.stdout
    table = json.loads((quickstart_run / "eval" / "hf" / "table.json").read_text())
    assert table["passed"] is False


def test_same_seed_twice_gives_the_same_numbers(quickstart_run):
    rows = []
    for _ in range(2):
        assert genai_cli("eval", quickstart_run, *FAST, "eval.tasks=[addition_mc]", "eval.gate=[]").returncode == 0
        rows.append(json.loads((quickstart_run / "eval" / "hf" / "table.json").read_text())["rows"])
    assert rows[0] == rows[1]


def test_gate_on_a_task_not_evaluated_fails_fast(quickstart_run):
    proc = genai_cli("eval", quickstart_run, "eval.tasks=[addition_mc]")
    assert proc.returncode == 2 and "rule on task 'quickstart_addition'" in proc.stderr


def test_unknown_task_suggests(quickstart_run):
    proc = genai_cli("eval", quickstart_run, "eval.tasks=[quickstart_additon]", "eval.gate=[]")
    assert proc.returncode == 2 and "unknown task 'quickstart_additon'" in proc.stderr
    assert "did you mean 'quickstart_addition'" in proc.stderr


def test_gate_metric_the_task_does_not_produce(quickstart_run):
    proc = genai_cli(
        "eval",
        quickstart_run,
        *FAST,
        "eval.baseline=false",
        "eval.gate=[{task: quickstart_addition, metric: f1, min: 0.5}]",
    )
    assert proc.returncode == 2 and "produces no metric 'f1'" in proc.stderr and "exact_match,strip" in proc.stderr


def user_suite(tmp_path, yaml_text, data=True):
    d = tmp_path / "my_suite"
    d.mkdir()
    if data:
        (d / "items.jsonl").write_text(
            '{"instruction": "Add 2 and 3.", "output": "5"}\n{"instruction": "Add 4 and 4.", "output": "8"}\n'
        )
    (d / "my_task.yaml").write_text(yaml_text)
    return d


MY_TASK = """\
task: my_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: items.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{instruction}}"
doc_to_target: "{{output}}"
generation_kwargs: {until: [], max_gen_toks: 6, do_sample: false}
filter_list:
  - name: strip
    filter: [{function: remove_whitespace}, {function: take_first}]
metric_list:
  - {metric: exact_match, aggregation: mean, higher_is_better: true}
"""


def test_a_dropped_in_suite_folder_is_a_task(quickstart_run, tmp_path):
    d = user_suite(tmp_path, MY_TASK)
    proc = genai_cli(
        "eval", quickstart_run, f"eval.suite_dirs=[{d}]", "eval.tasks=[my_sums]", "eval.baseline=false", "eval.gate=[]"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads((quickstart_run / "eval" / "hf" / "table.json").read_text())
    assert table["rows"][0]["task"] == "my_sums" and table["rows"][0]["tuned"] == 1.0


def test_broken_suite_yaml_names_file_and_line(quickstart_run, tmp_path):
    d = user_suite(tmp_path, MY_TASK.replace("test_split: test", "test_split: [test"))
    proc = genai_cli("eval", quickstart_run, f"eval.suite_dirs=[{d}]", "eval.tasks=[my_sums]", "eval.gate=[]")
    assert proc.returncode == 2 and "my_task.yaml:" in proc.stderr and "invalid task YAML" in proc.stderr


def test_suite_with_missing_data_file(quickstart_run, tmp_path):
    d = user_suite(tmp_path, MY_TASK, data=False)
    proc = genai_cli("eval", quickstart_run, f"eval.suite_dirs=[{d}]", "eval.tasks=[my_sums]", "eval.gate=[]")
    assert proc.returncode == 2 and "file not found: items.jsonl" in proc.stderr


def test_unreachable_endpoint(quickstart_run):
    proc = genai_cli("eval", quickstart_run, *FAST, "eval.backend=endpoint", "eval.endpoint.url=http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and "is unreachable" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture()
def broken_endpoint():
    """An OpenAI-shaped server that lists models but fails every completion."""

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b'{"object": "list", "data": [{"id": "quickstart", "object": "model"}]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_endpoint_that_returns_errors(quickstart_run, broken_endpoint):
    proc = genai_cli(
        "eval", quickstart_run, *FAST, "eval.backend=endpoint", f"eval.endpoint.url={broken_endpoint}", timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "the endpoint returned errors during evaluation" in proc.stderr and "Traceback" not in proc.stderr


def test_a_hub_task_offline_is_one_clear_error(monkeypatch):
    """lm-eval loading a task's dataset from the hub, offline, raises ConnectionError deep inside
    `datasets`: one error naming it instead of a traceback (the smoke skips such tasks)."""
    import lm_eval

    from genai.evaluation import runner
    from genai.recipe import EvalSection

    def offline(**_):
        raise ConnectionError("Couldn't reach 'allenai/ai2_arc' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(lm_eval, "simple_evaluate", offline)
    with pytest.raises(runner.DatasetUnavailable, match="a task's dataset is not available here: .*allenai/ai2_arc"):
        runner._run_lm_eval("hf", {}, EvalSection(tasks=["arc_easy"]), None, "hf")
