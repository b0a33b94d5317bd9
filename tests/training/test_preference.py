"""DPO, ORPO and KTO (train.method: dpo | orpo | kto): pairs tokenized with only the final answer trained and kept
together in rows, the losses as their papers write them, runs that learn to prefer the correct sum over an
evasion, an exact resume after SIGKILL, and non-preference data refused before training."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genai.data.pack import TokenizedSet, collate, make_rows
from genai.recipe import DpoSection
from tests.conftest import genai_cli
from tests.training.conftest import QS, resume_matches_uninterrupted

EVASIONS = ["I do not know.", "Ask someone else.", "Numbers are hard.", "That is a secret."]


def write_pairs(path: Path, source: Path, n: int, seed: int) -> Path:
    """Preference pairs from the quickstart sums: the answer against an evasion (learnable in seconds by a
    model that cannot add yet)."""
    rng = random.Random(seed)
    with open(source) as src, open(path, "w") as out:
        for line, _ in zip(src, range(n), strict=False):
            rec = json.loads(line)
            pair = {"prompt": rec["instruction"], "chosen": rec["output"], "rejected": rng.choice(EVASIONS)}
            out.write(json.dumps(pair) + "\n")
    return path


@pytest.fixture()
def dpo_recipe(tmp_path) -> Path:
    train = write_pairs(tmp_path / "pairs.jsonl", QS / "train.jsonl", 400, seed=0)
    held = write_pairs(tmp_path / "held.jsonl", QS / "test.jsonl", 40, seed=1)
    p = tmp_path / "dpo.yaml"
    p.write_text(f"""\
name: dpo
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {train}, format: preference}}]
  eval: [{{path: {held}, format: preference}}]
  max_length: 64
  cache_dir: {tmp_path / "cache"}
lora: {{r: 8, alpha: 16, dropout: 0.0}}
train:
  method: dpo
  dpo: {{beta: 0.1}}
  output_dir: {tmp_path / "runs"}
  max_steps: 40
  micro_batch_size: 4
  learning_rate: 3.0e-3
  warmup_steps: 3
  num_threads: 1
  logging_steps: 5
  eval_steps: 20
  exact_match: {{limit: 0}}
""")
    return p


def test_the_loss_types_are_the_published_formulas():
    from genai.training.objectives import LOSSES

    x = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])  # chosen minus rejected log-ratio
    cfg = DpoSection(beta=0.2, label_smoothing=0.1)
    want = -0.9 * F.logsigmoid(0.2 * x) - 0.1 * F.logsigmoid(-0.2 * x)
    assert torch.allclose(LOSSES["sigmoid"](x, cfg), want)
    assert torch.allclose(LOSSES["ipo"](x, cfg), (x - 1 / 0.4) ** 2)
    assert torch.allclose(LOSSES["hinge"](x, cfg), torch.relu(1 - 0.2 * x))
    # The policy equal to the reference: DPO's loss is log 2 for every pair.
    assert torch.allclose(LOSSES["sigmoid"](torch.zeros(3), DpoSection()), torch.full((3,), float(np.log(2))))


def test_pairs_share_their_prompt_train_only_the_answer_and_stay_together(dpo_recipe):
    from genai.data.prepare import prepare
    from genai.data.templates import template_for
    from genai.models import load_tokenizer, resolve_model_path
    from genai.recipe import load_recipe

    recipe = load_recipe(dpo_recipe, ["data.train.0.limit=6"])
    tok = load_tokenizer(recipe.model, resolve_model_path(recipe.model))
    data = prepare(recipe, tok, template_for(recipe, tok), use_cache=False)
    assert data.stats["train"]["pairs"] == 6 and len(data.train) == 12
    for i in range(6):
        (c_ids, c_tr), (r_ids, r_tr) = data.train.sample(2 * i), data.train.sample(2 * i + 1)
        n = int(np.argmax(c_tr))  # the prompt: everything before the answer, untrained and the same on both
        assert not c_tr[:n].any() and c_tr[n:].all() and r_tr[n:].all() and not r_tr[:n].any()
        assert (c_ids[:n] == r_ids[:n]).all()
        assert tok.eos_token_id in c_ids[n:] and tok.eos_token_id in r_ids[n:]  # each answer ends in its stop token
        assert tok.decode(c_ids[n:]) != tok.decode(r_ids[n:])
    lengths = np.array([5, 7, 3, 9, 4, 4])
    data = TokenizedSet(np.zeros(32, np.int32), np.ones(32, bool), np.concatenate([[0], np.cumsum(lengths)]))
    for packing in (True, False):
        rows = make_rows(data, packing, 16, group=2)
        assert sorted(s for r in rows for s in r) == list(range(6))
        assert all(r[j] % 2 == 0 and r[j + 1] == r[j] + 1 for r in rows for j in range(0, len(r), 2))
    assert collate(data, [[0, 1]], 0, packing=False)["input_ids"].shape == (2, 7)  # one padded row per side


@pytest.mark.slow
def test_dpo_learns_to_prefer_the_correct_sum_and_reports_its_signals(dpo_recipe):
    out = genai_cli("train", dpo_recipe, "--run-dir", dpo_recipe.parent / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    run = dpo_recipe.parent / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["method"] == "dpo"
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logged if "loss" in m]
    # The policy starts as the reference: loss log 2, no margin; then the chosen answers pull ahead.
    assert steps[-1]["loss"] < steps[0]["loss"] < 0.7
    assert steps[-1]["rewards/margins"] > 0 and steps[-1]["rewards/chosen"] > steps[-1]["rewards/rejected"]
    assert manifest["metrics"]["eval_loss"] < np.log(2)
    assert manifest["metrics"]["eval_rewards/accuracy"] >= 0.75, manifest["metrics"]


@pytest.mark.slow
def test_dpo_resumes_exactly_after_sigkill(dpo_recipe, tmp_path):
    args = ["train.max_steps=24", "train.save_steps=6", "train.logging_steps=1", "train.eval_steps=null"]
    resume_matches_uninterrupted(dpo_recipe, tmp_path, args, kill_between=(8, 20))


def test_orpo_odds_ratio_is_the_papers_and_stays_finite_near_certainty():
    from genai.training.objectives import odds_ratio

    c, r = torch.tensor([-0.2, -1.5, -3.0]), torch.tensor([-0.9, -0.4, -3.0])
    # As ORPO (and TRL) write it, from mean log-probabilities.
    want = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
    assert torch.allclose(odds_ratio(c, r), want, atol=1e-6)
    assert float(odds_ratio(c, r)[2]) == 0.0
    # A chosen answer of probability 1 - 1e-9: log1p(-exp(.)) rounds to -inf; the odds stay finite.
    near = torch.tensor([-1e-9], dtype=torch.float32, requires_grad=True)
    value = odds_ratio(near, torch.tensor([-2.0]))
    value.backward()
    assert torch.isfinite(value).all() and torch.isfinite(near.grad).all() and float(value) > 15


@pytest.mark.slow
def test_orpo_learns_the_answer_and_to_prefer_it(dpo_recipe):
    run = dpo_recipe.parent / "orpo"
    out = genai_cli("train", dpo_recipe, "--run-dir", run, "train.method=orpo", "train.orpo.beta=0.5")
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["method"] == "orpo"
    steps = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    # The SFT part teaches the answers; the odds-ratio part pulls them ahead of the evasions.
    assert steps[-1]["nll_loss"] < steps[0]["nll_loss"] and steps[-1]["loss"] < steps[0]["loss"]
    assert steps[-1]["log_odds_ratio"] > steps[0]["log_odds_ratio"]
    assert manifest["metrics"]["eval_rewards/accuracy"] >= 0.9, manifest["metrics"]
    assert manifest["metrics"]["eval_log_odds_ratio"] > 0


def test_dpo_on_data_without_rejected_answers_stops_before_training(small_recipe, tmp_path):
    out = genai_cli("train", small_recipe, "train.method=dpo")
    assert out.returncode == 2
    assert "data.train.0.format: train.method 'dpo' trains on preference records, not 'alpaca'" in out.stderr
    assert not (tmp_path / "runs").exists()
    out = genai_cli("validate", small_recipe, "train.method=orpo")
    assert out.returncode == 2 and "train.method 'orpo' trains on preference records" in out.stderr


def write_unpaired(path: Path, source: Path, n: int, seed: int) -> Path:
    """KTO's unpaired records from the quickstart sums: each answer labelled good, an evasion labelled bad."""
    rng = random.Random(seed)
    with open(source) as src, open(path, "w") as out:
        for line, _ in zip(src, range(n), strict=False):
            rec = json.loads(line)
            for completion, label in ((rec["output"], True), (rng.choice(EVASIONS), False)):
                out.write(json.dumps({"prompt": rec["instruction"], "completion": completion, "label": label}) + "\n")
    return path


@pytest.mark.slow
def test_kto_pushes_good_answers_up_and_bad_ones_down(dpo_recipe, tmp_path):
    train = write_unpaired(tmp_path / "kto.jsonl", QS / "train.jsonl", 200, seed=0)
    held = write_unpaired(tmp_path / "kto-held.jsonl", QS / "test.jsonl", 20, seed=1)
    run = tmp_path / "kto"
    out = genai_cli(
        "train",
        dpo_recipe,
        "--run-dir",
        run,
        "train.method=kto",
        "train.kto.beta=0.5",
        "train.logging_steps=1",
        f"data.train=[{{path: {train}, format: unpaired}}]",
        f"data.eval=[{{path: {held}, format: unpaired}}]",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["method"] == "kto"
    assert manifest["data"]["train"]["desirable"] == 200 and manifest["data"]["train"]["undesirable"] == 200
    steps = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    # The policy starts as the reference: every loss 1 - sigmoid(0) = 0.5, no reward; then the sides part.
    assert steps[0]["loss"] == pytest.approx(0.5, abs=0.02) and steps[-1]["loss"] < 0.45
    met = manifest["metrics"]
    assert met["eval_rewards/chosen"] > 0 > met["eval_rewards/rejected"], met
    assert met["eval_kl"] >= 0


def test_kto_loss_is_the_papers(monkeypatch):
    import genai.training.objectives as objectives
    from genai.recipe import KtoSection
    from genai.training.objectives import KTO

    kto = KTO.__new__(KTO)
    kto.cfg = KtoSection(beta=0.3, desirable_weight=1.5, undesirable_weight=0.5)
    kto.reference = {"train": np.zeros(4)}
    kto.labels = {"train": np.array([True, True, False, False])}
    kto.trained_positions, kto.packing = False, False
    logps = torch.tensor([1.0, 0.4, -2.0, 0.2])  # answer, mismatched, answer, mismatched
    monkeypatch.setattr(objectives, "sample_logps", lambda *a, **k: (logps, torch.ones(4, dtype=torch.long)))
    loss, sums = kto.loss(None, {}, [[0, 1], [2, 3]])
    kl = 0.3  # the mean of the mismatched log-ratios (0.4, 0.2), at least 0
    want = 1.5 * (1 - torch.sigmoid(torch.tensor(0.3 * (1.0 - kl)))) + 0.5 * (
        1 - torch.sigmoid(torch.tensor(0.3 * (kl + 2.0)))
    )
    assert float(loss) == pytest.approx(float(want), abs=1e-6)
    assert sums["rewards/chosen"] == pytest.approx(0.3) and sums["rewards/rejected"] == pytest.approx(-0.6)
