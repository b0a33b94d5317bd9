"""Preprocessing: counts, overlong handling, the content-hash cache, and `preprocess --show`."""

import json

import pytest

from genai.data.prepare import prepare
from genai.errors import GenaiError
from genai.recipe import load_recipe
from tests.conftest import genai_cli


@pytest.fixture()
def recipe_file(tmp_path):
    rows = [{"instruction": f"Add {a} and {a}.", "output": str(2 * a)} for a in range(40)]
    rows.append({"instruction": "word " * 80, "output": "long"})
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    p = tmp_path / "r.yaml"
    p.write_text(
        f"name: t\nmodel: {{name_or_path: genai/tiny-llama}}\n"
        f"data:\n  train: [{{path: d.jsonl}}]\n  max_length: 64\n  cache_dir: {tmp_path / 'cache'}\n"
    )
    return p


def test_truncation_and_drop_are_counted(recipe_file, tiny_tokenizer):
    prep = prepare(load_recipe(recipe_file), tiny_tokenizer, tiny_tokenizer.chat_template)
    assert prep.stats["train"]["samples"] == 40 and prep.stats["train"]["dropped"] == 1  # truncated to no answer
    prep = prepare(load_recipe(recipe_file, ["data.overlong=drop"]), tiny_tokenizer, tiny_tokenizer.chat_template)
    assert prep.stats["train"]["dropped"] == 1 and prep.stats["train"]["truncated"] == 0
    assert max(prep.train.lengths()) <= 64


def test_all_dropped_is_an_error_before_training(recipe_file, tiny_tokenizer):
    with pytest.raises(GenaiError, match="all 41 samples were dropped"):
        prepare(load_recipe(recipe_file, ["data.max_length=8"]), tiny_tokenizer, tiny_tokenizer.chat_template)


def test_empty_dataset_is_an_error(recipe_file, tiny_tokenizer):
    (recipe_file.parent / "d.jsonl").write_text("\n")
    with pytest.raises(GenaiError, match="data.train: the dataset is empty"):
        prepare(load_recipe(recipe_file), tiny_tokenizer, tiny_tokenizer.chat_template)


def test_cache_hit_on_same_inputs_and_miss_on_change(recipe_file, tiny_tokenizer):
    r = load_recipe(recipe_file)
    first = prepare(r, tiny_tokenizer, tiny_tokenizer.chat_template)
    second = prepare(r, tiny_tokenizer, tiny_tokenizer.chat_template)
    assert not first.cache_hit and second.cache_hit
    assert (first.train.ids == second.train.ids).all() and (first.train.trained == second.train.trained).all()
    assert not prepare(
        load_recipe(recipe_file, ["data.max_length=100"]), tiny_tokenizer, tiny_tokenizer.chat_template
    ).cache_hit
    with (recipe_file.parent / "d.jsonl").open("a") as fh:
        fh.write(json.dumps({"instruction": "new", "output": "row"}) + "\n")
    assert not prepare(r, tiny_tokenizer, tiny_tokenizer.chat_template).cache_hit


def test_preprocess_show_marks_trained_tokens(recipe_file):
    out = genai_cli("preprocess", recipe_file, "--show", "1")
    assert out.returncode == 0, out.stderr
    assert "train: 41 examples -> 40 samples" in out.stdout
    assert "[[0<|im_end|>⏎" in out.stdout  # sample 0 answers "0"; only that span is trained
