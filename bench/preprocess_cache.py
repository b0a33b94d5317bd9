"""P5: preprocessing on a second run (cache hit) vs the first run, same recipe and tokenizer.

Each run is its own process (as two `genai` commands would be), timing `prepare()` alone, so no
in-process memo helps the second run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def child(cache: str) -> None:
    from genai.data.prepare import prepare
    from genai.data.templates import resolve_template
    from genai.models import load_tokenizer, resolve_model_path
    from genai.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", [f"data.cache_dir={cache}"])
    tok = load_tokenizer(recipe.model, resolve_model_path(recipe.model))
    template = resolve_template(None, tok)
    t0 = time.perf_counter()
    data = prepare(recipe, tok, template)
    print(f"RESULT {time.perf_counter() - t0} {int(data.cache_hit)}")


def run(cache: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, __file__, "--child", cache], capture_output=True, text=True, check=True)
    secs, hit = next(x for x in out.stdout.splitlines() if x.startswith("RESULT")).split()[1:]
    return float(secs), hit == "1"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    cache = tempfile.mkdtemp(prefix="genai-bench-cache-")
    (cold, hit1), (warm, hit2) = run(cache), run(cache)
    assert not hit1 and hit2
    print(f"first run {cold:.3f} s, second run {warm:.4f} s: {cold / warm:.0f}x (target >= 20x)")
    from bench.common import record

    record(
        "P5 preprocessing cache (quickstart, 6200 samples; separate processes)",
        f"first {cold:.3f} s, second {warm:.4f} s = **{cold / warm:.0f}x**",
    )


if __name__ == "__main__":
    main()
