"""Preprocessing: counts, overlong handling, the content-hash cache, and `preprocess --show`."""

import json
import re

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


@pytest.mark.parametrize("overlong", ["truncate", "drop"])
def test_all_dropped_is_an_error_whose_hint_names_a_length_that_fits(recipe_file, tiny_tokenizer, overlong):
    recipe = load_recipe(recipe_file, ["data.max_length=8", f"data.overlong={overlong}"])
    with pytest.raises(GenaiError, match=r"all 41 samples are longer than data.max_length=8 tokens") as exc:
        prepare(recipe, tiny_tokenizer, tiny_tokenizer.chat_template)
    fits = int(re.search(r"set data.max_length=(\d+)", exc.value.hint).group(1))
    assert fits > 8  # never the current value
    fitted = load_recipe(recipe_file, [f"data.max_length={fits}", "data.overlong=drop"])
    assert prepare(fitted, tiny_tokenizer, tiny_tokenizer.chat_template).stats["train"]["samples"] == 41  # all fit
    # data.overlong=truncate is only suggested when it is not already the setting
    assert ("data.overlong=truncate" in exc.value.hint) == (overlong == "drop")


def _chat_file(tmp_path, rows):
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps({"messages": m}) for m in rows) + "\n")
    return ["data.train.0.path=" + str(tmp_path / "chat.jsonl"), "data.train.0.format=messages"]


ANSWERED = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
UNANSWERED = [*ANSWERED, {"role": "user", "content": "And?"}]


def test_chat_whose_last_turn_is_not_the_assistants_is_skipped_with_a_count(recipe_file, tmp_path, capsys):
    from genai.data.prepare import split_examples

    overrides = _chat_file(tmp_path, [ANSWERED, UNANSWERED, ANSWERED, UNANSWERED, UNANSWERED])
    train, _ = split_examples(load_recipe(recipe_file, overrides))
    assert [ex.messages for ex in train] == [ANSWERED, ANSWERED]
    err = capsys.readouterr().err
    assert f"warning: skipped 3 of 5 records of {tmp_path / 'chat.jsonl'} whose last turn is not the assistant's" in err
    assert err.count("\n") == 1  # one line


def test_all_records_skipped_is_an_error(recipe_file, tmp_path):
    from genai.data.prepare import split_examples

    with pytest.raises(GenaiError, match=r"chat\.jsonl: all 2 records end with a turn that is not the assistant's"):
        split_examples(load_recipe(recipe_file, _chat_file(tmp_path, [UNANSWERED, UNANSWERED])))


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
    assert "trained: [[trained]], the rest masked)" in out.stdout  # the legend says what [[ ]] means
