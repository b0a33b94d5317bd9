"""Recipe loading: overrides, resolved paths, and one clear error per kind of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genai.errors import GenaiError
from genai.recipe import load_recipe
from tests.conftest import ROOT, genai_cli

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = """\
name: t
model:
  name_or_path: genai/tiny-llama
data:
  train:
    - path: d.jsonl
train:
  learning_rate: 1.0e-3
"""


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_validate(path):
    assert load_recipe(path).name


def test_at_least_three_real_recipes_name_hub_models():
    hub = [
        p
        for p in RECIPES
        if "/" in load_recipe(p).model.name_or_path and not load_recipe(p).model.name_or_path.startswith("genai/")
    ]
    assert len(hub) >= 3


def test_paths_are_relative_to_the_recipe_file(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.data.train[0].path == str(tmp_path / "d.jsonl")


def test_output_folders_are_relative_to_the_recipe_file_and_the_default_to_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    text = GOOD.replace("\ntrain:\n", "\ntrain:\n  output_dir: out\n  checkpoint_dir: ckpt\n")
    r = load_recipe(write(tmp_path, text))
    assert r.train.output_dir == str(tmp_path / "out") and r.train.checkpoint_dir == str(tmp_path / "ckpt")
    assert load_recipe(write(tmp_path, GOOD)).train.output_dir == str(tmp_path / "elsewhere" / "runs")
    # A run's saved recipe keeps meaning the same folder wherever it is loaded from.
    saved = tmp_path / "run" / "recipe.yaml"
    saved.parent.mkdir()
    saved.write_text(r.to_yaml())
    assert load_recipe(saved).train.output_dir == str(tmp_path / "out")


def test_dotted_overrides(tmp_path):
    r = load_recipe(
        write(tmp_path, GOOD),
        ["train.learning_rate=1e-4", "lora.r=8", "data.packing=false", "train.distributed.profile=ddp"],
    )
    assert r.train.learning_rate == 1e-4 and r.lora.r == 8 and r.data.packing is False
    assert r.train.distributed.profile == "ddp"


def test_override_path_is_relative_to_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    monkeypatch.chdir(tmp_path / "sub")
    r = load_recipe(write(tmp_path, GOOD), ["data.train.0.path=other.jsonl"])
    assert r.data.train[0].path == str(tmp_path / "sub" / "other.jsonl")


def error_of(tmp_path, text, overrides=()):
    with pytest.raises(GenaiError) as exc:
        load_recipe(write(tmp_path, text), list(overrides))
    return str(exc.value)


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("learning_rate", "learnig_rate"))
    assert "r.yaml:8" in msg and "train.learnig_rate" in msg and "did you mean 'learning_rate'" in msg


def test_wrong_type_names_field_and_line(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("1.0e-3", "fast"))
    assert "r.yaml:8" in msg and "train.learning_rate" in msg and "'fast'" in msg


def test_out_of_range_value(tmp_path):
    msg = error_of(tmp_path, GOOD + "lora:\n  r: 0\n")
    assert "r.yaml:10" in msg and "lora.r" in msg and "greater than or equal to 1" in msg


def test_bad_override_is_reported_as_override(tmp_path):
    msg = error_of(tmp_path, GOOD, ["train.epochs=-1"])
    assert "command-line override" in msg and "train.epochs" in msg


def test_missing_data_file(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("d.jsonl", "nope.jsonl"))
    assert "r.yaml:6" in msg and "data.train.0.path" in msg and "nope.jsonl" in msg


def test_invalid_yaml_names_line(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("  learning_rate: 1.0e-3", "  learning_rate: [1"))
    assert "r.yaml:" in msg and "invalid YAML" in msg


def test_missing_required_section(tmp_path):
    msg = error_of(tmp_path, "name: t\nmodel:\n  name_or_path: x\n")
    assert "data" in msg and "required field is missing" in msg


def test_cli_validate_prints_resolved_recipe_and_exit_2_on_error(tmp_path):
    good = genai_cli("validate", write(tmp_path, GOOD), "lora.r=4")
    assert good.returncode == 0, good.stderr
    assert "r: 4" in good.stdout and "learning_rate: 0.001" in good.stdout
    bad = genai_cli("validate", write(tmp_path, GOOD.replace("learning_rate", "lr"), "bad.yaml"))
    assert bad.returncode == 2
    assert bad.stderr.count("error:") == 1 and "bad.yaml:8" in bad.stderr and "train.lr" in bad.stderr
    assert bad.stdout == ""


def test_schema_is_json_schema():
    out = genai_cli("schema")
    schema = json.loads(out.stdout)
    assert schema["title"] == "genai recipe" and "train" in schema["properties"]


# `genai validate` runs the preflight, which loads the tokenizer (and so torch): seconds, by design.
@pytest.mark.parametrize("argv", [["--help"], ["schema"], ["runs", "--help"]])
def test_light_verbs_do_not_import_torch(argv):
    code = (
        "import sys; sys.argv = ['genai', *sys.argv[1:]]\n"
        "from genai.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "logo.png:1: not a text file: byte 0x89 at byte offset 0"),
        ("r.yaml", b"name: t\nmodel:\x00\x00\n", "r.yaml:2: not a text file: byte 0x00 at byte offset 14 is a NUL"),
        ("r.yaml", "name: t\ndescription: café\n".encode("latin-1"), "r.yaml:2: not a text file: byte 0xe9"),
        ("r.yaml", b"name: t\x01\n", "r.yaml:1: invalid YAML: unacceptable character #x0001"),
        ("train.jsonl", b'{"instruction": "a", "output": "b"}\n', "train.jsonl: this is a data file, not a recipe"),
        ("r.yaml", b"# " + b"x" * 2**20 + b"\n", "r.yaml: over 1 MiB, too big for a recipe"),
    ],
)
def test_a_file_that_is_not_a_recipe_is_one_clear_error(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(GenaiError) as exc:
        load_recipe(tmp_path / name)
    assert expected in exc.value.message


def test_a_folder_given_as_the_recipe(tmp_path):
    with pytest.raises(GenaiError, match="is a folder, not a recipe file"):
        load_recipe(tmp_path)


def test_recipe_saved_with_a_bom_loads(tmp_path):
    p = write(tmp_path, GOOD)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())  # Windows Notepad's "UTF-8 with BOM"
    assert load_recipe(p).name == "t"


def test_cli_binary_recipe_exits_2_without_traceback(tmp_path):
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    out = genai_cli("validate", tmp_path / "logo.png")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: {tmp_path / 'logo.png'}:1: not a text file")


def test_kv_cache_is_whole_gib_as_vllm_reads_it():
    from pydantic import ValidationError

    from genai.recipe import ServeSection

    assert ServeSection(kv_cache_gib=2.0).kv_cache_gib == 2  # saved recipes hold 1.0
    with pytest.raises(ValidationError, match="fractional part"):
        ServeSection(kv_cache_gib=0.5)  # vLLM would fail at start on VLLM_CPU_KVCACHE_SPACE=0.5
