"""Issue 16: the studio's runs page over 500 runs renders in at most 1 s.

Writes 500 synthetic runs (recipe.yaml, manifest.json with stages and metrics, an eval table with a gate on
every other run, metrics.jsonl) under a temporary runs root, starts `genai studio` on it, and measures:
  server   the GET / response time (the page rendered on the server: scan + template), median of 7
  browser  Chromium (the OS's, driven by Playwright) loading the page until its load event, every row in
           the table and the page's script run, from navigation start: median of 7 (a fresh page each)
Usage: python bench/studio_runs_page.py [--runs 500] [--record]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_runs(root: Path, n: int) -> None:
    """n synthetic runs across 20 recipes, as `genai run` leaves them."""
    for i in range(n):
        recipe = f"recipe-{i % 20:02d}"
        run = root / recipe / f"2026{1 + i % 12:02d}{1 + i % 28:02d}-{i:06d}"
        run.mkdir(parents=True)
        (run / "recipe.yaml").write_text(
            f"name: {recipe}\nmodel: {{name_or_path: genai/tiny-llama}}\n"
            f"train: {{learning_rate: {1e-4 * (1 + i % 7)}, max_steps: {100 + i}}}\n"
        )
        stages = {"train": {"status": "done"}, "eval": {"status": "done"}}
        if i % 2:
            stages["gate"] = {"status": "passed" if i % 3 else "failed"}
        manifest = {
            "run_id": run.name,
            "recipe": recipe,
            "status": "complete",
            "method": ("sft", "dpo", "grpo")[i % 3],
            "steps": 100 + i,
            "base_model": {"name_or_path": "genai/tiny-llama"},
            "metrics": {"train_loss": 1.0 / (1 + i % 50), "eval_loss": 1.2 / (1 + i % 40)},
            "stages": stages,
        }
        (run / "manifest.json").write_text(json.dumps(manifest))
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, 51))
        )
        table = {
            "rows": [
                {"task": "quickstart_addition", "metric": "exact_match,strip", "base": 0.3, "tuned": 0.9, "delta": 0.6}
            ],
            "gate": [],
            "passed": True,
        }
        (run / "eval" / "hf").mkdir(parents=True)
        (run / "eval" / "hf" / "table.json").write_text(json.dumps(table))


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="genai-studio-bench-"))
    make_runs(work / "runs", args.runs)
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "studio", "--runs", str(work / "runs"), "--recipes", str(work), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = proc.stdout.readline().split()[2]
        for _ in range(100):
            try:
                httpx.get(url, timeout=30)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        server = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            res = httpx.get(url, timeout=60)
            server.append(time.perf_counter() - start)
            assert res.status_code == 200 and res.text.count("<tr data-run=") == args.runs
        browser = browser_loads(url, args.runs, args.rounds)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    s, b = statistics.median(server), statistics.median(browser) if browser else None
    line = f"runs page, {args.runs} runs: server render {s * 1000:.0f} ms" + (
        f", Chromium load to every row shown {b * 1000:.0f} ms (target <= 1000 ms)" if b is not None else ""
    )
    print(line + f"; median of {args.rounds}")
    if args.record:
        from bench.common import record

        record("studio runs page", line + f"; median of {args.rounds}")


def browser_loads(url: str, n: int, rounds: int) -> list[float]:
    """Seconds from navigation start to the load event with all n rows in the table (Chromium), per round."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no Chromium here: browser timing skipped")
        return []
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(rounds):
            page = browser.new_page()
            page.goto(url, wait_until="load")
            rows = page.locator("#runs tbody tr").count()
            assert rows == n, rows
            took = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd / 1000")
            out.append(took)
            page.close()
        browser.close()
    return out


if __name__ == "__main__":
    main()
