"""genai studio in a real headless browser (Chromium from the OS packages, driven by Playwright), over a
real studio process: the runs page lists a known run, its page draws its loss chart, a run launched with an
override finishes and shows up, two runs compare with the differing setting highlighted, the playground
streams answers from the real vLLM server side by side, a launched run stops on request, and Ctrl-C stops
the studio with the server it started. Set GENAI_SCREENSHOTS=<folder> to keep a screenshot of each page
(the README's come from here)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/setup installs Debian's chromium)"),
]
KNOWN = "quickstart-short"


@pytest.fixture(scope="module")
def world(short_parent, tmp_path_factory):
    """A runs root holding the known run (a copy of the quickstart-short parent) and a corrupt one, a recipe
    folder, and a studio process serving them."""
    tmp = tmp_path_factory.mktemp("studio")
    runs, recipes = tmp / "runs", tmp / "recipes"
    shutil.copytree(short_parent, runs / KNOWN / short_parent.name, ignore=shutil.ignore_patterns("checkpoints"))
    broken = runs / "broken" / "20200101-000000"
    broken.mkdir(parents=True)
    (broken / "recipe.yaml").write_text("name: broken\n")
    (broken / "manifest.json").write_text('{"status": "compl')
    recipes.mkdir()
    data = ROOT / "recipes" / "data" / "quickstart"
    text = (ROOT / "recipes" / "quickstart-short.yaml").read_text().replace("data/quickstart", str(data))
    (recipes / "quickstart-short.yaml").write_text(text)
    exe = Path(sys.executable).with_name("genai")
    proc = subprocess.Popen(
        [str(exe), "studio", "--runs", str(runs), "--recipes", str(recipes), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = proc.stdout.readline()
    assert first.startswith("genai studio: http://127.0.0.1:"), first
    url = first.split()[2].rstrip("/")
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield {"url": url, "runs": runs, "known": f"{KNOWN}/{short_parent.name}", "tmp": tmp, "proc": proc}
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(str(e)))
    yield pg
    context.close()
    assert not problems, problems  # no script error on any page


def shot(page, name: str) -> None:
    folder = os.environ.get("GENAI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_runs_page_lists_the_known_run_and_a_corrupt_one(world, page):
    page.goto(world["url"] + "/")
    row = page.locator(f'tr[data-run="{world["known"]}"]')
    sync_api.expect(row).to_be_visible()
    sync_api.expect(row).to_contain_text("quickstart-short")
    sync_api.expect(row).to_contain_text("complete")
    sync_api.expect(page.locator('tr[data-run="broken/20200101-000000"]')).to_contain_text("manifest.json: unreadable")
    page.fill("#filter", "broken")
    sync_api.expect(row).to_be_hidden()
    page.fill("#filter", "")
    shot(page, "runs")


def test_run_page_draws_its_loss_chart(world, page):
    page.goto(world["url"] + "/run/" + world["known"])
    chart = page.locator('figure.chart[data-metric="loss"]')
    sync_api.expect(chart).to_be_visible()
    assert chart.locator("canvas").count() == 1  # uPlot drew it
    sync_api.expect(page.locator("#recipe")).to_contain_text("learning_rate")
    shot(page, "run")


def launch(page, world, overrides: list[str]) -> None:
    page.goto(world["url"] + "/launch")
    sync_api.expect(page.locator(".validation.ok")).to_contain_text("valid: recipe 'quickstart-short'")
    page.fill("#overrides", "\n".join([*overrides, f"data.cache_dir={world['tmp'] / 'cache'}"]))
    page.click("#launch")


def test_launch_a_tiny_run_with_an_override_and_watch_it_finish(world, page):
    launch(page, world, ["train.max_steps=6", "train.logging_steps=1", "eval.tasks=[]", "train.exact_match.limit=0"])
    sync_api.expect(page.locator("#job-state")).to_have_text("finished", timeout=240_000)
    sync_api.expect(page.locator("#job-stages")).to_contain_text("train: done")
    sync_api.expect(page.locator('#job-chart figure.chart[data-metric="loss"]')).to_be_visible()
    shot(page, "launch")
    launched = page.locator("#job-run").inner_text()
    assert launched.startswith(f"{KNOWN}/") and launched != world["known"]
    world["launched"] = launched
    page.goto(world["url"] + "/")
    sync_api.expect(page.locator(f'tr[data-run="{launched}"]')).to_contain_text("complete")


def test_the_editor_marks_a_bad_line(world, page):
    page.goto(world["url"] + "/launch")
    sync_api.expect(page.locator(".validation.ok")).to_be_visible()
    text = page.input_value("#yaml")
    page.fill("#yaml", text.replace("max_steps:", "max_stepz:"))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "max_steps:" in t)
    sync_api.expect(page.locator(".validation.bad")).to_contain_text(f"line {line}")
    sync_api.expect(page.locator(".validation.bad")).to_contain_text("did you mean 'max_steps'?")
    sync_api.expect(page.locator("#gutter .bad")).to_have_text(f"{line} !")


def test_compare_highlights_the_setting_that_differs(world, page):
    page.goto(world["url"] + "/")
    page.check(f'.pick[value="{world["known"]}"]')
    page.check(f'.pick[value="{world["launched"]}"]')
    page.click("#compare")
    page.wait_for_url("**/compare?**")
    differs = page.locator('#diff tr.differs[data-key="train.max_steps"]')
    sync_api.expect(differs).to_be_visible()
    sync_api.expect(differs).to_contain_text("17")
    sync_api.expect(differs).to_contain_text("6")
    assert page.locator("#diff tr.same").first.is_hidden()  # only the differences, by default
    sync_api.expect(page.locator('figure.chart[data-metric="loss"]')).to_be_visible()
    shot(page, "compare")


@pytest.mark.vllm
def test_playground_streams_answers_side_by_side_from_the_real_server(world, page):
    page.goto(world["url"] + "/playground")
    page.select_option("#run", world["known"])
    page.click("#serve")
    sync_api.expect(page.locator("#serve-state")).to_contain_text("ready", timeout=300_000)
    columns = page.locator(".column")
    sync_api.expect(columns.nth(0).locator(".target")).to_contain_text("fine-tuned")
    assert "(base)" in columns.nth(1).locator(".target option:checked").inner_text()
    page.fill("#prompt", "What is 12 + 30?")
    page.click("#send")
    texts = []
    for i in range(2):
        answer = columns.nth(i).locator(".msg.assistant.done")
        sync_api.expect(answer).to_be_visible(timeout=60_000)
        assert answer.inner_text().strip() and int(answer.get_attribute("data-chunks")) >= 1
        assert "error" not in (answer.get_attribute("class") or "")
        texts.append(answer.inner_text())
    assert texts[0] != texts[1]  # asked at once, each model answers for itself (greedy: they differ)
    shot(page, "playground")
    status = json.loads(page.request.get(world["url"] + "/api/serve").text())
    world["served"] = int(status["targets"][0]["base_url"].rsplit(":", 1)[1].split("/")[0])


def test_a_launched_run_stops_on_request(world, page):
    launch(page, world, ["train.max_steps=100000", "eval.tasks=[]", "train.exact_match.limit=0"])
    sync_api.expect(page.locator("#job-run")).not_to_be_empty(timeout=120_000)
    page.click("#stop")
    sync_api.expect(page.locator("#job-state")).to_have_text("stopped", timeout=60_000)
    sync_api.expect(page.locator("#job-log")).to_contain_text("interrupted")


def test_ctrl_c_stops_the_studio_and_the_server_it_started(world):
    proc = world["proc"]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert "genai studio: stopped" in out
    if "served" in world:  # the playground's vLLM server is gone with it
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", world["served"]), timeout=2).close()
