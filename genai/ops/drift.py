"""`genai monitor RUN --drift [CAPTURE]`: is the traffic a server captured still like the training data?

The baseline is the run's training data as the trainer saw it (data.train through genai's loaders and
format registry, the eval hold-out left out), each example cut to its prompt (the conversation before
the last answer). The traffic is what `serve.capture` recorded (answered requests only). Features:
- prompt_tokens: prompt length in the run's tokenizer's tokens, PSI over baseline quantile bins;
- turns: user turns per prompt (1, 2, 3, 4, 5+), PSI;
- template_markers: share of prompts whose user text holds a raw chat-template marker (<|im_start|>,
  [INST], ### Instruction, ...: a client formatting prompts itself), the difference of the shares;
- tokens: unigram distribution over the baseline's top-K token ids plus one bucket for all others, PSI.
PSI (population stability index) reads: < 0.1 stable, 0.1-0.2 some change, > 0.2 a shift.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genai.errors import GenaiError

# Chat-template markers that a user's own text should not hold (several families).
MARKERS = {
    "chatml": re.compile(r"<\|im_(start|end)\|>"),
    "llama3": re.compile(r"<\|(begin_of_text|start_header_id|end_header_id|eot_id)\|>"),
    "llama2": re.compile(r"\[/?INST\]|<<SYS>>"),
    "alpaca": re.compile(r"###\s*(Instruction|Response|Input)\b"),
    "gemma": re.compile(r"<(start|end)_of_turn>"),
    "zephyr": re.compile(r"<\|(user|assistant|system|end)\|>"),
    "eos": re.compile(r"</s>|<\|endoftext\|>"),
}
EPS = 1e-4  # an empty bin's share in PSI (log of 0 otherwise)
MAX_PROMPTS = 5000  # a seeded sample of each side beyond this: the statistics are as good, and fast


@dataclass(frozen=True)
class PromptView:
    """What the features read of one prompt."""

    text: str  # every message's text, joined
    user_text: str  # the user turns' text, joined
    turns: int  # user turns

    @classmethod
    def of(cls, messages: list[dict]) -> PromptView:
        """From chat messages (content as text)."""
        texts = [(m.get("role"), m.get("content") if isinstance(m.get("content"), str) else "") for m in messages]
        user = [t for r, t in texts if r == "user"]
        return cls("\n".join(t for _, t in texts), "\n".join(user), len(user))


def _sample(items: list, limit: int, seed: int = 0) -> list:
    return items if len(items) <= limit else random.Random(seed).sample(items, limit)


def baseline_prompts(recipe) -> list[PromptView]:
    """The training examples' prompts, as the trainer read them."""
    from genai.data.prepare import split_examples

    train, _ = split_examples(recipe)
    out = []
    for ex in train:
        if ex.messages is None:  # a plain prompt/completion pair: the prompt is the user's text
            out.append(PromptView(ex.prompt, ex.prompt, 1))
            continue
        last = max((i for i, m in enumerate(ex.messages) if m["role"] == "assistant"), default=len(ex.messages))
        out.append(PromptView.of(ex.messages[:last]))
    return _sample(out, MAX_PROMPTS)


def captured_prompts(capture: Path) -> list[PromptView]:
    """Prompts of the answered requests of a capture folder (or file); none is an error."""
    from genai.serving.capture import prompts_of, read_records

    out = [PromptView.of(m) for rec in read_records(capture) if rec.get("status") == 200 for m in prompts_of(rec)]
    if not out:
        raise GenaiError(
            f"{capture}: the capture is empty (no answered chat or completion request in capture-*.jsonl)",
            hint="serve with serve.capture.enabled=true and send some traffic first",
        )
    return _sample(out, MAX_PROMPTS)


def psi(expected, actual) -> float:
    """Population stability index of two histograms over the same bins."""
    p = np.asarray(expected, float)
    q = np.asarray(actual, float)
    p = np.clip(p / max(p.sum(), 1), EPS, None)
    q = np.clip(q / max(q.sum(), 1), EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def n_bins(n_base: int, n_cap: int) -> int:
    """Quantile bins for a numeric feature: fewer with few prompts, so that PSI's noise on a sample of
    the same distribution ((bins-1)/n roughly) stays near 0.05, well under the 0.2 of a real shift."""
    return int(np.clip(1 + min(n_base, n_cap) // 20, 2, 10))


def _spread(values: np.ndarray) -> dict:
    return {
        "mean": round(float(values.mean()), 2),
        "p50": float(np.median(values)),
        "p95": float(np.quantile(values, 0.95)),
    }


def length_feature(base: np.ndarray, cap: np.ndarray) -> dict:
    """prompt_tokens: PSI over the baseline's quantile bins."""
    qs = np.linspace(0, 1, n_bins(len(base), len(cap)) + 1)[1:-1]
    edges = np.unique(np.quantile(base, qs))
    width = len(edges) + 1
    counts = [np.bincount(np.searchsorted(edges, v, side="right"), minlength=width) for v in (base, cap)]
    b, c = _spread(base), _spread(cap)
    return {
        "feature": "prompt_tokens",
        "metric": "psi",
        "score": psi(*counts),
        "baseline": b,
        "capture": c,
        "detail": f"median {b['p50']:g} -> {c['p50']:g} tokens, p95 {b['p95']:g} -> {c['p95']:g}",
    }


def turns_feature(base: list[int], cap: list[int]) -> dict:
    """turns: PSI over 0..4 and 5+ user turns."""
    counts = [np.bincount(np.clip(v, 0, 5), minlength=6) for v in (base, cap)]
    b, c = float(np.mean(base)), float(np.mean(cap))
    return {
        "feature": "turns",
        "metric": "psi",
        "score": psi(*counts),
        "baseline": {"mean": round(b, 2)},
        "capture": {"mean": round(c, 2)},
        "detail": f"mean user turns {b:.2f} -> {c:.2f}",
    }


def marker_feature(base: list[PromptView], cap: list[PromptView]) -> dict:
    """template_markers: the share of prompts with a raw template marker in user text, capture minus baseline."""

    def rate(prompts: list[PromptView]) -> tuple[float, dict]:
        found = Counter(name for p in prompts for name, rx in MARKERS.items() if rx.search(p.user_text))
        hit = sum(any(rx.search(p.user_text) for rx in MARKERS.values()) for p in prompts)
        return hit / len(prompts), dict(found)

    (rb, fb), (rc, fc) = rate(base), rate(cap)
    return {
        "feature": "template_markers",
        "metric": "rate_diff",
        "score": abs(rc - rb),
        "baseline": {"rate": round(rb, 4), "markers": fb},
        "capture": {"rate": round(rc, 4), "markers": fc},
        "detail": f"prompts with raw template markers {rb:.1%} -> {rc:.1%}" + (f" ({', '.join(fc)})" if fc else ""),
    }


def token_feature(base_ids: list[list[int]], cap_ids: list[list[int]], tokenizer, top_k: int) -> dict:
    """tokens: PSI over the baseline's top-K token ids and one 'other' bucket."""
    base_counts = Counter(t for ids in base_ids for t in ids)
    cap_counts = Counter(t for ids in cap_ids for t in ids)
    top = [t for t, _ in base_counts.most_common(top_k)]
    inside = set(top)

    def histogram(counts: Counter) -> list[int]:
        return [counts.get(t, 0) for t in top] + [sum(n for t, n in counts.items() if t not in inside)]

    hb, hc = histogram(base_counts), histogram(cap_counts)
    other_b, other_c = hb[-1] / max(sum(hb), 1), hc[-1] / max(sum(hc), 1)
    new = [tokenizer.decode([t]) for t, _ in cap_counts.most_common() if t not in inside][:5]
    return {
        "feature": "tokens",
        "metric": "psi",
        "score": psi(hb, hc),
        "baseline": {"top_k": len(top), "other_share": round(other_b, 4)},
        "capture": {"other_share": round(other_c, 4), "top_new_tokens": new},
        "detail": f"tokens outside the training top-{len(top)} {other_b:.1%} -> {other_c:.1%}",
    }


def load_tokenizer(run):
    """The tokenizer saved with the run's artifact (what the server tokenizes with)."""
    from transformers import AutoTokenizer

    folder = run.artifact_dir
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise GenaiError(f"{folder}: cannot load the run's tokenizer ({exc})") from None


def resolve_run(target: str | Path):
    """A run folder, or a recipe's newest finished run."""
    from genai.runs import choose_run, open_run

    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from genai.recipe import load_recipe

        return choose_run(load_recipe(path), latest=True)[0]
    return open_run(path)


def drift_report(
    target: str | Path,
    capture: Path | None = None,
    *,
    threshold: float = 0.2,
    marker_threshold: float = 0.05,
    top_k: int = 50,
) -> dict:
    """Each feature's drift score between the run's training prompts and the captured ones, and the
    violations (a PSI above `threshold`, a marker share moved by more than `marker_threshold`)."""
    from genai.serving.capture import capture_folder

    run = resolve_run(target)
    recipe = run.recipe()
    capture = Path(capture) if capture else capture_folder(recipe.serve.capture, run.path)
    cap = captured_prompts(capture)
    tokenizer = load_tokenizer(run)
    base = baseline_prompts(recipe)
    ids = [tokenizer([p.text for p in side], add_special_tokens=False)["input_ids"] for side in (base, cap)]
    features = [
        length_feature(*(np.array([len(x) for x in side]) for side in ids)),
        turns_feature([p.turns for p in base], [p.turns for p in cap]),
        marker_feature(base, cap),
        token_feature(*ids, tokenizer, top_k),
    ]
    for f in features:
        f["threshold"] = marker_threshold if f["metric"] == "rate_diff" else threshold
        f["score"] = round(f["score"], 4)
        f["drifted"] = f["score"] > f["threshold"]
    violations = [
        f"{f['feature']}: {f['metric']} {f['score']:.3g} > {f['threshold']:g} ({f['detail']})"
        for f in features
        if f["drifted"]
    ]
    report = {
        "run": str(run.path),
        "capture": str(capture),
        "baseline_prompts": len(base),
        "captured_prompts": len(cap),
        "features": features,
        "violations": violations,
        "drifted": bool(violations),
    }
    if len(cap) < 50:
        report["note"] = f"only {len(cap)} captured prompts: the scores are noisy"
    return report


def print_drift(report: dict) -> None:
    """The report as a table, then the violations."""
    from genai.textfmt import print_table

    rows = [
        [f["feature"], f["metric"], f["score"], f["threshold"], "DRIFT" if f["drifted"] else "ok", f["detail"]]
        for f in report["features"]
    ]
    title = f"drift: {report['captured_prompts']} captured vs {report['baseline_prompts']} training prompts"
    print_table(["feature", "metric", "score", "threshold", "", "detail"], rows, title=title)
    if report.get("note"):
        print(f"note: {report['note']}")
    for v in report["violations"]:
        print(f"violation: {v}")


def capture_path(target: str | Path, capture: Path | None) -> Path:
    """CAPTURE as given, else the run's serve.capture.folder (default RUN/capture)."""
    from genai.serving.capture import capture_folder

    if capture:
        return Path(capture)
    run = resolve_run(target)
    return capture_folder(run.recipe().serve.capture, run.path)


def monitor_drift(
    target: str,
    capture: Path | None,
    *,
    drift: bool = True,
    replay_url: str | None = None,
    out: Path | None = None,
    model: str | None = None,
    api_key_env: str = "GENAI_API_KEY",
    as_json: bool = False,
    **options,
) -> int:
    """`genai monitor RUN --drift [CAPTURE]` (and `--replay URL --out FILE`): print the drift report and
    the replay's summary; the exit code (3: drift found)."""
    import json

    from genai.errors import ExitCode

    if (replay_url is None) != (out is None):
        raise GenaiError("genai monitor: --replay URL and --out FILE go together (the eval JSONL to write)")
    if not drift and replay_url is None:
        raise GenaiError("genai monitor: a CAPTURE argument goes with --drift or --replay URL --out FILE")
    capture = capture_path(target, capture)
    result: dict = {}
    if replay_url:
        from genai.ops.replay import replay

        result["replay"] = replay(capture, replay_url, out, model=model, api_key_env=api_key_env)
    if drift:
        result["drift"] = drift_report(target, capture, **options)
    if as_json:
        print(json.dumps(result if len(result) > 1 else next(iter(result.values())), indent=2))
    else:
        if "replay" in result:
            r = result["replay"]
            print(f"replayed {r['replayed']} captured prompts through {r['endpoint']} into {r['out']}")
        if "drift" in result:
            print_drift(result["drift"])
    drifted = result.get("drift", {}).get("drifted", False)
    return int(ExitCode.GATE_FAILED if drifted else ExitCode.OK)
