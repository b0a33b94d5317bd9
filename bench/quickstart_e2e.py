"""P6: the README's main job, `genai run recipes/quickstart.yaml`, end to end from an empty
genai cache (tiny model build, training, eval, gate, serve, sample request, shutdown)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="genai-bench-e2e-"))
    env = {**os.environ, "GENAI_HOME": str(work / "home")}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("genai")),
            "run",
            str(ROOT / "recipes" / "quickstart.yaml"),
            f"train.output_dir={work / 'runs'}",
            "serve.port=0",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    print(proc.stdout)
    print(f"genai run quickstart, cold cache: {secs:.0f} s (target <= 180 s)")
    from bench.common import record

    record("P6 quickstart via genai run, end to end (cold genai cache)", f"**{secs:.0f} s**")


if __name__ == "__main__":
    main()
