"""P4: start-up time of `genai --help` and `genai validate` against `python -c pass` (median of 7)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
GENAI = str(Path(sys.executable).with_name("genai"))


def median_seconds(cmd: list[str], n: int = 7) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    base = median_seconds([sys.executable, "-c", "pass"])
    help_s = median_seconds([GENAI, "--help"])
    validate_s = median_seconds([GENAI, "validate", str(ROOT / "recipes" / "quickstart.yaml")])
    print(
        f"python -c pass   {base:.3f} s\ngenai --help     {help_s:.3f} s (target <= 0.3 s)\n"
        f"genai validate   {validate_s:.3f} s (target <= 1 s)"
    )
    from bench.common import record

    record(
        "P4 CLI start-up (median of 7)",
        f"python -c pass {base:.3f} s; genai --help **{help_s:.3f} s**; genai validate **{validate_s:.3f} s**",
    )


if __name__ == "__main__":
    main()
