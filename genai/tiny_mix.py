"""The tiny base model's pre-training mix: sums plus simple letter, word and digit tasks.

Each task turns a random draw into (question, answer). The base learns the skills (reverse,
spell, count letters, add) but answers in its own style, "answer." and a newline, never the end
of turn token, so any chat task still has to be taught by fine-tuning; the breadth is what lets
LoRA on top learn a new user's first string task (a word backwards, its letters in capitals)
instead of only sums. Held-out sums and words are never drawn.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

Draw = Callable[[random.Random], tuple[str, str]]


def is_held_out(a: int, b: int) -> bool:
    """The 200 two-digit pairs kept out of every training set (the quickstart's test items)."""
    return (a * 31 + b * 17) % 50 == 0


def is_held_out_word(word: str) -> bool:
    """One bundled word in five is never pre-trained on, to measure what generalises."""
    return zlib.crc32(word.encode()) % 5 == 0


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    """The bundled word list (lowercase English, 3-5 letters)."""
    text = resources.files("genai").joinpath("assets/tiny/words.txt").read_text(encoding="utf-8")
    return tuple(w for w in text.split() if w)


@lru_cache(maxsize=1)
def train_words() -> tuple[str, ...]:
    """The words the base is pre-trained on (the rest are held out)."""
    return tuple(w for w in words() if not is_held_out_word(w))


@lru_cache(maxsize=1)
def train_pairs() -> tuple[tuple[int, int], ...]:
    """The two-digit sum pairs the base is pre-trained on."""
    return tuple((a, b) for a in range(100) for b in range(100) if not is_held_out(a, b))


SUM_PHRASINGS = ("What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "What is the sum of {a} and {b}?")


def _word_task(phrasings: tuple[str, ...], answer: Callable[[str], str]) -> Draw:
    def draw(rng: random.Random) -> tuple[str, str]:
        w = rng.choice(train_words())
        return rng.choice(phrasings).format(w=w), answer(w)

    return draw


def _sum(rng: random.Random) -> tuple[str, str]:
    a, b = rng.choice(train_pairs())
    return rng.choice(SUM_PHRASINGS).format(a=a, b=b), str(a + b)


def _join(rng: random.Random) -> tuple[str, str]:
    w, v = rng.choice(train_words()), rng.choice(train_words())
    return rng.choice(("Join {w} and {v}.", "Write {w} then {v}.")).format(w=w, v=v), w + v


def _next(rng: random.Random) -> tuple[str, str]:
    n = rng.randrange(0, 199)
    return rng.choice(("What comes after {n}?", "What number follows {n}?")).format(n=n), str(n + 1)


def _prev(rng: random.Random) -> tuple[str, str]:
    n = rng.randrange(1, 200)
    return rng.choice(("What comes before {n}?", "What number precedes {n}?")).format(n=n), str(n - 1)


# (name, weight, draw). Sums keep the largest share: the quickstart and addition_mc rely on them.
TASKS: tuple[tuple[str, float, Draw], ...] = (
    ("sum", 0.34, _sum),
    ("copy", 0.06, _word_task(("Repeat the word {w}.", "Say {w}."), lambda w: w)),
    ("reverse", 0.12, _word_task(("Reverse the word {w}.", "Write {w} backwards."), lambda w: w[::-1])),
    ("spell", 0.10, _word_task(("Spell {w}.", "Spell the word {w}."), lambda w: " ".join(w))),
    ("upper", 0.08, _word_task(("Write {w} in capitals.", "Uppercase {w}."), str.upper)),
    ("first", 0.06, _word_task(("What is the first letter of {w}?",), lambda w: w[0])),
    ("last", 0.06, _word_task(("What is the last letter of {w}?",), lambda w: w[-1])),
    ("length", 0.06, _word_task(("How many letters are in {w}?",), lambda w: str(len(w)))),
    ("join", 0.04, _join),
    ("next", 0.04, _next),
    ("prev", 0.04, _prev),
)

TASK_NAMES = tuple(name for name, _, _ in TASKS)


def draw(rng: random.Random) -> tuple[str, str]:
    """One (question, answer) from the mix, by the tasks' weights."""
    _, _, task = rng.choices(TASKS, weights=[w for _, w, _ in TASKS])[0]
    return task(rng)
