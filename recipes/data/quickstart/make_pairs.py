"""Preference pairs for recipes/quickstart-dpo.yaml, built from the quickstart sums: the correct sum (chosen)
against a near miss of the kind a model that half-learned addition makes (rejected): a carry dropped or
added, a units digit off by one, the tens digit off by one. Deterministic; run from the repo root:

    python recipes/data/quickstart/make_pairs.py
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).parent


def near_miss(answer: int, rng: random.Random) -> int:
    """A wrong sum close to the right one (never negative, never the answer)."""
    while True:
        wrong = answer + rng.choice([-11, -10, -9, -1, 1, 9, 10, 11])
        if wrong >= 0 and wrong != answer:
            return wrong


def write_pairs(source: Path, out: Path, seed: int) -> int:
    """One pair per quickstart record of `source`, written to `out`; returns how many."""
    rng = random.Random(seed)
    lines = []
    for line in source.read_text().splitlines():
        rec = json.loads(line)
        answer = int(rec["output"])
        lines.append(
            json.dumps({"prompt": rec["instruction"], "chosen": rec["output"], "rejected": str(near_miss(answer, rng))})
        )
    out.write_text("\n".join(lines) + "\n")
    return len(lines)


if __name__ == "__main__":
    for name, seed in (("train", 0), ("test", 1)):
        n = write_pairs(HERE / f"{name}.jsonl", HERE / f"pairs_{name}.jsonl", seed)
        print(f"{HERE / f'pairs_{name}.jsonl'}: {n} pairs")
