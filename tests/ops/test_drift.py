"""`genai monitor RUN --drift [CAPTURE]`: a run whose training data is the quickstart's sums, against
captured streams written in the capture's own format. A stream drawn from the training data itself is
not drift (exit 0); long prompts of other words with raw template markers over several turns are
(exit 3, the features named); an empty or missing capture is one clear error (exit 2)."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from genai.ops.drift import psi
from genai.serving.capture import RotatingWriter
from tests.conftest import ROOT

QS = ROOT / "recipes" / "data" / "quickstart"
WORDS = "harbor lantern velvet quartz meadow orbit saffron glacier thunder willow canyon ember".split()


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_tokenizer) -> Path:
    """A finished run folder as drift reads it: the resolved recipe, a manifest and the artifact's tokenizer."""
    from genai.recipe import load_recipe

    run = tmp_path_factory.mktemp("runs") / "quickstart" / "r1"
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", [f"train.output_dir={run.parent.parent}"])
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    (run / "manifest.json").write_text(json.dumps({"run_id": "r1", "artifact": {"kind": "model", "path": "model"}}))
    tiny_tokenizer.save_pretrained(run / "model")
    return run


def chat_record(i: int, messages: list[dict], status: int = 200) -> dict:
    return {
        "id": f"r{i}",
        "endpoint": "/v1/chat/completions",
        "status": status,
        "stream": False,
        "request": {"model": "quickstart", "messages": messages, "max_tokens": 8},
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "1"}}]},
    }


def write_stream(folder: Path, records: list[dict]) -> Path:
    writer = RotatingWriter(folder, max_bytes=64 * 1024, max_files=100)
    for rec in records:
        writer.write(json.dumps(rec))
    return folder


def same_stream(n: int = 300) -> list[dict]:
    rows = [json.loads(x) for x in (QS / "train.jsonl").read_text().splitlines()]
    picked = random.Random(1).sample(rows, n)
    return [chat_record(i, [{"role": "user", "content": r["instruction"]}]) for i, r in enumerate(picked)]


def shifted_stream(n: int = 300) -> list[dict]:
    rng = random.Random(2)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120)))
        user = f"<|im_start|>user\n{text}<|im_end|>" if i % 2 else f"### Instruction:\n{text}"
        turns = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}] * (i % 3)
        out.append(chat_record(i, [*turns, {"role": "user", "content": user}]))
    return out


def test_a_stream_like_the_training_data_is_not_drift(run, genai_main):
    write_stream(run / "capture", same_stream())  # the default place: RUN/capture
    code, out, err = genai_main("monitor", run, "--drift", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["captured_prompts"] == 300 and rep["baseline_prompts"] == 5000
    assert rep["violations"] == [] and rep["drifted"] is False
    scores = {f["feature"]: f["score"] for f in rep["features"]}
    assert set(scores) == {"prompt_tokens", "turns", "template_markers", "tokens"}
    assert scores["prompt_tokens"] < 0.1 and scores["tokens"] < 0.1 and scores["turns"] == 0
    assert scores["template_markers"] == 0


def test_a_shifted_stream_is_drift_and_names_each_feature(run, genai_main, tmp_path):
    # Refused and failed requests are not traffic the model saw: they must not count.
    stream = shifted_stream() + [chat_record(999, [{"role": "user", "content": "What is 1 + 1?"}], status=401)]
    cap = write_stream(tmp_path / "cap", stream)
    code, out, err = genai_main("monitor", run, cap, "--drift")
    assert code == 3, err
    for feature in ("prompt_tokens", "turns", "template_markers", "tokens"):
        assert f"violation: {feature}: " in out
    code, out, _ = genai_main("monitor", run, cap, "--drift", "--json")
    rep = json.loads(out)
    assert code == 3 and rep["captured_prompts"] == 300
    by = {f["feature"]: f for f in rep["features"]}
    assert all(f["drifted"] for f in by.values())
    assert by["template_markers"]["capture"]["rate"] == 1.0
    assert set(by["template_markers"]["capture"]["markers"]) == {"chatml", "alpaca"}
    assert by["prompt_tokens"]["capture"]["p50"] > 5 * by["prompt_tokens"]["baseline"]["p50"]
    # A threshold above every score: no violation, exit 0.
    code, out, _ = genai_main("monitor", run, cap, "--drift", "--json", "--threshold", "1e9", "--marker-threshold", "1")
    assert code == 0 and json.loads(out)["violations"] == []


def test_an_empty_or_missing_capture_is_one_clear_error(run, genai_main, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "capture-1.jsonl").write_text("")
    code, out, err = genai_main("monitor", run, tmp_path / "empty", "--drift")
    assert code == 2 and "the capture is empty" in err and "serve.capture.enabled=true" in err
    assert "Traceback" not in err and out == ""
    only_refused = write_stream(tmp_path / "refused", [chat_record(1, [{"role": "user", "content": "x"}], 401)])
    code, _, err = genai_main("monitor", run, only_refused, "--drift")
    assert code == 2 and "the capture is empty" in err
    code, _, err = genai_main("monitor", run, tmp_path / "nowhere", "--drift")
    assert code == 2 and "no such capture folder" in err
    code, _, err = genai_main("monitor", run, "--replay", "http://127.0.0.1:9/v1")
    assert code == 2 and "--out" in err


def test_psi_of_equal_and_different_histograms():
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0)
    assert psi([100, 0], [0, 100]) > 5
    a = np.array([50, 30, 20])
    assert psi(a, a[::-1]) == pytest.approx(psi(a[::-1], a))
