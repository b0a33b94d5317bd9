"""`genai loadtest --slo`: thresholds on the load test's figures, checked at every load level.

Syntax: comma-separated terms METRIC OP VALUE, e.g. "ttft_p90<=0.5,e2e_p99<=5,itl_p50<=50ms,errors<=0".
Latencies are in seconds (or with an `ms`/`s` suffix); OP is one of <=, <, >=, >.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from genai.errors import GenaiError

LATENCIES = ("ttft", "itl", "e2e")
STATS = ("p50", "p90", "p99", "mean")
# Level figures that are not latencies: the level dict's own keys.
PLAIN = ("errors", "error_rate", "requests_per_s", "output_tokens_per_s")
METRICS = tuple(f"{lat}_{stat}" for lat in LATENCIES for stat in STATS) + PLAIN
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_TERM = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*(ms|s)?\s*$")
EXAMPLE = "ttft_p90<=0.5,e2e_p99<=5,itl_p50<=50ms,errors<=0,output_tokens_per_s>=100"


@dataclass(frozen=True)
class Term:
    """One threshold: `metric op limit` (latency limits in seconds)."""

    text: str
    metric: str
    op: str
    limit: float

    def value(self, level: dict) -> float | None:
        """The level's figure for this metric (None: no successful request measured it)."""
        if self.metric in PLAIN:
            return level[self.metric]
        lat, stat = self.metric.rsplit("_", 1)
        return level[f"{lat}_s"][stat]

    def holds(self, level: dict) -> bool:
        """Whether the level meets this threshold (a latency nothing measured does not)."""
        got = self.value(level)
        return got is not None and OPS[self.op](got, self.limit)


def _bad(term: str, why: str) -> GenaiError:
    return GenaiError(
        f"--slo: '{term.strip()}': {why}",
        hint=f'comma-separated METRIC OP VALUE terms, e.g. "{EXAMPLE}"; metrics: {", ".join(METRICS)}',
    )


def parse_slo(text: str | None) -> list[Term]:
    """The --slo terms, validated (a bad term is an error naming it, before any load)."""
    if text is None:
        return []
    if not text.strip():
        raise _bad(text, "empty")
    terms = []
    for part in text.split(","):
        match = _TERM.match(part)
        if not match:
            raise _bad(part, "expected METRIC OP VALUE with OP one of <=, <, >=, >")
        metric, op, number, unit = match.groups()
        if metric not in METRICS:
            raise _bad(part, f"unknown metric '{metric}'")
        try:
            limit = float(number)
        except ValueError:
            raise _bad(part, f"'{number}' is not a number") from None
        if unit and metric in PLAIN:
            raise _bad(part, f"{metric} takes a plain number (units go with latencies)")
        if metric == "error_rate" and not 0 <= limit <= 1:
            raise _bad(part, "error_rate is a fraction from 0 to 1")
        terms.append(Term(part.strip(), metric, op, limit / 1000 if unit == "ms" else limit))
    return terms


def check_slo(terms: list[Term], levels: list[dict]) -> dict | None:
    """Every term at every level: the violations (term, level, measured value) and whether all held."""
    if not terms:
        return None
    violations = [
        {"term": t.text, "level": lv["label"], "value": t.value(lv), "limit": t.limit}
        for lv in levels
        for t in terms
        if not t.holds(lv)
    ]
    return {"terms": [t.text for t in terms], "passed": not violations, "violations": violations}


def describe_violation(v: dict) -> str:
    """One violation as a line: the term, the level and what was measured."""
    got = "nothing measured (no successful request)" if v["value"] is None else f"measured {v['value']:.6g}"
    return f"{v['term']} at {v['level']}: {got}"
