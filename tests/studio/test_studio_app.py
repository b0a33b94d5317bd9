"""The studio's routes without a browser: what it refuses (paths outside its folders, a wrong Host, a
POST without its header, a missing token), and bad input shown as a message (a corrupt manifest, a run
deleted while open, a recipe with errors, a name that would overwrite a recipe, a port in use)."""

import json
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from genai.studio.app import Studio, create_app  # noqa: E402
from tests.conftest import ROOT, genai_cli  # noqa: E402

POST = {"X-Genai-Studio": "1"}


def fake_run(root: Path, recipe: str, run_id: str, manifest: dict | str | None, lr: float = 1e-3) -> Path:
    run = root / recipe / run_id
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(f"name: {recipe}\ntrain:\n  learning_rate: {lr}\n  max_steps: 10\n")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, 11)))
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (run / "manifest.json").write_text(text)
    return run


@pytest.fixture()
def world(tmp_path):
    runs, recipes = tmp_path / "runs", tmp_path / "recipes"
    recipes.mkdir()
    data = ROOT / "recipes" / "data" / "quickstart"
    text = (ROOT / "recipes" / "quickstart-short.yaml").read_text().replace("data/quickstart", str(data))
    (recipes / "quickstart-short.yaml").write_text(text)
    manifest = {"status": "complete", "method": "sft", "steps": 10, "metrics": {"train_loss": 0.2}}
    fake_run(runs, "a", "20260101-000000", {**manifest, "recipe": "a"})
    fake_run(runs, "b", "20260102-000000", {**manifest, "recipe": "b"}, lr=2e-3)
    fake_run(runs, "c", "20260103-000000", '{"status": "compl')  # torn
    (tmp_path / "secret.txt").write_text("do not serve")
    studio = Studio(runs, [recipes])
    return studio, TestClient(create_app(studio), base_url="http://127.0.0.1")


def test_runs_page_lists_runs_and_says_which_manifest_is_corrupt(world):
    _, client = world
    page = client.get("/")
    assert page.status_code == 200
    assert "a/20260101-000000" in page.text and "b/20260102-000000" in page.text
    rows = {r["id"]: r for r in client.get("/api/runs").json()}
    assert rows["c/20260103-000000"]["status"] == "corrupt"
    assert "manifest.json: unreadable" in rows["c/20260103-000000"]["error"]
    assert rows["a/20260101-000000"]["train_loss"] == 0.2
    assert client.get("/run/c/20260103-000000").status_code == 200  # a corrupt run still opens


def test_compare_marks_the_settings_that_differ(world):
    _, client = world
    page = client.get("/compare?run=a/20260101-000000&run=b/20260102-000000")
    assert page.status_code == 200
    assert '<tr class="differs" data-key="train.learning_rate">' in page.text
    assert '<tr class="same" data-key="train.max_steps">' in page.text
    one = client.get("/compare?run=a/20260101-000000")
    assert one.status_code == 400 and "compare takes 2 to 4 runs; 1 selected" in one.text


@pytest.mark.parametrize(
    "path",
    ["/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/a/%2e%2e/%2e%2e/secret.txt", "/files//etc/passwd"],
)
def test_no_file_outside_the_runs_root(world, path):
    _, client = world
    res = client.get(path)
    assert res.status_code == 404 and "do not serve" not in res.text


def test_a_symlink_out_of_the_runs_root_is_refused(world, tmp_path):
    studio, client = world
    (studio.runs_root / "a" / "20260101-000000" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    assert client.get("/files/a/20260101-000000/leak.txt").status_code == 404
    assert client.get("/files/a/20260101-000000/metrics.jsonl").status_code == 200


def test_a_run_deleted_while_open_is_a_message_not_a_trace(world):
    studio, client = world
    assert client.get("/run/a/20260101-000000").status_code == 200
    shutil.rmtree(studio.runs_root / "a")
    page = client.get("/run/a/20260101-000000")
    assert page.status_code == 404 and "run &#39;a/20260101-000000&#39; is gone" in page.text
    assert "Traceback" not in page.text
    api = client.get("/api/run/a/20260101-000000")
    assert api.status_code == 400 and "is gone" in api.json()["error"]


def test_requests_from_another_site_are_refused(world):
    _, client = world
    assert client.get("/", headers={"Host": "evil.example:7860"}).status_code == 400  # DNS rebinding
    res = client.post("/api/serve/stop")  # no X-Genai-Studio header: a cross-site form post
    assert res.status_code == 403


def test_a_token_is_required_when_set_and_never_echoed(tmp_path):
    studio = Studio(tmp_path, [tmp_path], token="s3cret-token")
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    denied = client.get("/")
    assert denied.status_code == 401 and "s3cret-token" not in denied.text
    assert client.get("/?token=wrong").status_code == 401
    opened = client.get("/?token=s3cret-token", follow_redirects=False)
    assert opened.status_code == 303 and "token" not in opened.headers["location"]
    assert client.get("/").status_code == 200  # the cookie it set
    assert (
        TestClient(create_app(studio), base_url="http://127.0.0.1")
        .get("/", headers={"Authorization": "Bearer s3cret-token"})
        .status_code
        == 200
    )


def test_the_editor_shows_the_recipe_errors_by_line_and_never_overwrites(world):
    studio, client = world
    text = client.get("/api/recipe", params={"name": "quickstart-short.yaml"}).json()["text"]
    ok = client.post("/api/validate", json={"recipe": "quickstart-short.yaml", "text": text}, headers=POST).json()
    assert ok == {"ok": True, "name": "quickstart-short"}
    bad = text.replace("learning_rate:", "learning_rat:").replace("max_length: 64", "max_length: -1")
    res = client.post("/api/validate", json={"recipe": "quickstart-short.yaml", "text": bad}, headers=POST).json()
    assert not res["ok"]
    lines = {e["line"]: e["message"] for e in res["lines"]}
    want = next(i for i, t in enumerate(bad.splitlines(), 1) if "learning_rat:" in t)
    assert "unknown key 'learning_rat'; did you mean 'learning_rate'?" in lines[want]
    assert any("data.max_length" in m for m in lines.values())

    saved = client.post(
        "/api/recipes", json={"recipe": "quickstart-short.yaml", "name": "mine.yaml", "text": text}, headers=POST
    )
    assert saved.json() == {"recipe": "mine.yaml"} and (studio.recipe_dirs[0] / "mine.yaml").read_text() == text
    again = client.post(
        "/api/recipes", json={"recipe": "quickstart-short.yaml", "name": "mine.yaml", "text": bad}, headers=POST
    )
    assert again.status_code == 400 and "never overwrites" in again.json()["error"]
    assert (studio.recipe_dirs[0] / "mine.yaml").read_text() == text
    sneaky = client.post(
        "/api/recipes", json={"recipe": "quickstart-short.yaml", "name": "../x.yaml", "text": text}, headers=POST
    )
    assert sneaky.status_code == 400 and not (studio.recipe_dirs[0].parent / "x.yaml").exists()
    broken = client.post(
        "/api/recipes", json={"recipe": "quickstart-short.yaml", "name": "broken.yaml", "text": bad}, headers=POST
    )
    assert broken.status_code == 400 and not (studio.recipe_dirs[0] / "broken.yaml").exists()


def test_launching_an_unknown_recipe_or_a_bad_override_says_why(world):
    _, client = world
    res = client.post("/api/launch", json={"recipe": "../../etc/passwd", "overrides": ""}, headers=POST)
    assert res.status_code == 400 and "no recipe '../../etc/passwd'" in res.json()["error"]
    res = client.post(
        "/api/launch", json={"recipe": "quickstart-short.yaml", "overrides": "train.max_steps=-3"}, headers=POST
    )
    assert res.status_code == 400 and "train.max_steps" in res.json()["error"]


def test_cli_refuses_a_taken_port_and_an_exposed_address_without_a_token(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = genai_cli("studio", "--runs", tmp_path, "--port", str(port), timeout=60)
    assert out.returncode == 2 and f"127.0.0.1:{port} is not free" in out.stderr
    env_out = genai_cli("studio", "--runs", tmp_path, "--host", "0.0.0.0", timeout=60, env={"GENAI_STUDIO_TOKEN": ""})
    assert env_out.returncode == 2 and "set a token in $GENAI_STUDIO_TOKEN" in env_out.stderr


def test_artifact_folders_list_their_files(world):
    _, client = world
    page = client.get("/files/a/20260101-000000/")
    assert page.status_code == 200 and 'href="/files/a/20260101-000000/metrics.jsonl"' in page.text


def test_a_run_named_like_markup_cannot_inject_a_script(world):
    studio, client = world
    evil = "x</script><script>alert(1)</script>"
    fake_run(studio.runs_root, "evil", "20260104-000000", {"status": "complete", "recipe": evil})
    page = client.get("/compare?run=evil/20260104-000000&run=a/20260101-000000")
    assert page.status_code == 200 and "<script>alert(1)" not in page.text
    assert "alert(1)" in client.get("/").text  # shown, as text
