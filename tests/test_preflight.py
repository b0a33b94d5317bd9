"""The preflight: what a recipe can get wrong is found in seconds, before training, with nothing left behind."""

import json
import socket
import time

import pytest

from genai.errors import GenaiError
from genai.preflight import Plan, preflight
from genai.recipe import ServeSection, load_recipe
from genai.serving.server import check_serve_host
from tests.conftest import ROOT, genai_cli
from tests.test_runs import adapter_run, recipe

QS = ROOT / "recipes" / "data" / "quickstart"


@pytest.fixture()
def qs(tmp_path):
    """The quickstart recipe with everything written under tmp_path."""
    p = tmp_path / "qs.yaml"
    p.write_text((ROOT / "recipes" / "quickstart.yaml").read_text().replace("data/quickstart/", f"{QS}/"))
    return p


def out_args(tmp_path):
    return [f"train.output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"]


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-2000:]
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_an_eval_task_typo_stops_genai_train_before_training(qs, tmp_path):
    proc = genai_cli("train", qs, *out_args(tmp_path), "eval.tasks=[quickstart_additon, addition_mc]", "eval.gate=[]")
    assert_clean_error(proc, "eval.tasks: unknown task 'quickstart_additon'", "did you mean 'quickstart_addition'")
    assert not (tmp_path / "runs").exists()  # no run folder, no training


def test_a_gate_on_a_task_not_evaluated_stops_genai_run_before_training(qs, tmp_path):
    proc = genai_cli("run", qs, *out_args(tmp_path), "eval.tasks=[addition_mc]", "--no-serve")
    assert_clean_error(proc, "eval.gate.0: rule on task 'quickstart_addition', which eval.tasks does not include")
    assert not (tmp_path / "runs").exists()


def test_every_problem_is_listed_at_once(qs, tmp_path):
    proc = genai_cli(
        "validate",
        qs,
        f"data.cache_dir={tmp_path / 'cache'}",
        "eval.tasks=[addition_mc]",
        f"model.name_or_path={tmp_path / 'no-model'}",
        f"train.output_dir={qs}/runs",  # under a file
    )
    assert_clean_error(
        proc,
        "recipe 'quickstart': 3 problems found before training",
        "eval.gate.0: rule on task 'quickstart_addition'",
        f"model.name_or_path: local model folder not found: {tmp_path / 'no-model'}",
        f"train.output_dir: cannot write to {qs}/runs",
    )


def test_a_missing_local_model_folder_is_not_taken_for_a_hub_id(tmp_path):
    r = recipe(tmp_path, f"model.name_or_path={tmp_path / 'models' / 'my-llama'}")
    with pytest.raises(GenaiError, match="local model folder not found"):
        preflight(r)
    (tmp_path / "models" / "my-llama").mkdir(parents=True)
    with pytest.raises(GenaiError, match="is not a model folder"):
        preflight(r)


def test_an_uncached_hub_id_offline_is_a_clear_error_within_seconds(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(GenaiError, match="'acme/no-such-model' is not in the local Hugging Face cache") as err:
        preflight(recipe(tmp_path, "model.name_or_path=acme/no-such-model"))
    assert "HF_HUB_OFFLINE" in err.value.message and "--local-dir" in err.value.hint
    assert time.perf_counter() - t0 < 10


def test_a_template_that_cannot_render_the_data_is_found_before_training(tmp_path):
    (tmp_path / "bad.jinja").write_text("{% for m in messages %}{{ raise_exception('no ' + m['role']) }}{% endfor %}")
    (tmp_path / "chat.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n"
    )
    r = recipe(
        tmp_path,
        f"model.chat_template={tmp_path / 'bad.jinja'}",
        f"data.train=[{{path: {tmp_path / 'chat.jsonl'}, format: messages}}]",
    )
    with pytest.raises(GenaiError, match=r"chat.jsonl:1: the chat template cannot render this record: .*no user"):
        preflight(r)


def test_a_taken_serve_port_stops_genai_run_before_training(qs, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = load_recipe(qs, [*out_args(tmp_path), f"serve.port={port}"])
        with pytest.raises(GenaiError, match=f"serve.port: 127.0.0.1:{port} is not free"):
            preflight(r, Plan(serve=True))
        preflight(r, Plan(serve=False))  # --no-serve: the port does not matter


def test_genai_serve_checks_the_port_and_the_address_before_vllm_starts(tmp_path):
    run = adapter_run(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        t0 = time.perf_counter()
        proc = genai_cli("serve", run.path, f"serve.port={taken.getsockname()[1]}")
        assert_clean_error(proc, "is not free", "serve.port=0")
        assert time.perf_counter() - t0 < 30  # vLLM never started
    proc = genai_cli("serve", run.path, "serve.host=0.0.0.0", "serve.port=0", env={"GENAI_API_KEY": ""})
    assert_clean_error(proc, "serve.host: 0.0.0.0 is reachable from other machines and no API key is set", "--insecure")


def test_an_exposed_address_needs_a_key_or_insecure(monkeypatch):
    monkeypatch.delenv("GENAI_API_KEY", raising=False)
    exposed = ServeSection(host="0.0.0.0")
    with pytest.raises(GenaiError, match="no API key is set"):
        check_serve_host(exposed, insecure=False)
    check_serve_host(exposed, insecure=True)
    check_serve_host(ServeSection(), insecure=False)  # loopback needs neither
    monkeypatch.setenv("GENAI_API_KEY", "k")
    check_serve_host(exposed, insecure=False)


def test_the_banner_says_when_every_interface_is_bound():
    from genai.serving.serve import bound

    assert bound("0.0.0.0", 8000) == "bound to 0.0.0.0:8000, every interface: reachable from other machines"
    assert bound("127.0.0.1", 8000) == "bound to 127.0.0.1:8000, this address only"


def test_the_quickstart_passes_and_leaves_nothing_behind(qs, tmp_path):
    out = tmp_path / "fresh" / "runs"
    preflight(load_recipe(qs, [f"train.output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}"]), Plan(serve=True))
    assert not (tmp_path / "fresh").exists()  # the writability probe removes what it made


def test_liger_required_where_it_cannot_run_stops_genai_train_before_training(qs, tmp_path):
    # No GPU here (and liger-kernel, Triton-only, is not installed): `true` cannot hold; `auto` quietly skips it.
    proc = genai_cli("train", qs, *out_args(tmp_path), "train.liger=true")
    assert_clean_error(proc, "train.liger: true", "hint: ")
    assert not (tmp_path / "runs").exists()
    recipe = load_recipe(qs)
    assert recipe.train.liger == "auto"
    from genai.training import kernels

    assert not kernels.wanted("auto", cuda=False) and not kernels.wanted(False, cuda=True)


def test_liger_on_a_sagemaker_cpu_instance_is_refused_before_submitting(qs):
    recipe = load_recipe(qs, ["train.liger=true", "sagemaker.instance_type=ml.m5.xlarge"])
    with pytest.raises(GenaiError, match=r"train.liger: true needs a GPU; sagemaker.instance_type ml.m5.xlarge"):
        preflight(recipe, Plan(sagemaker=True))
    preflight(load_recipe(qs, ["train.liger=true"]), Plan(sagemaker=True))  # the default, a GPU instance: fine
