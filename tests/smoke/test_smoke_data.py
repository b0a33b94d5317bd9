"""The smoke's recipe and data checks, on the tiny Llama's ChatML tokenizer (no family build needed)."""

import dataclasses
import json

import pytest

from genai.data.prepare import load_examples
from genai.families.registry import get_family
from genai.recipe import load_recipe
from genai.smoke.checklist import Checklist
from genai.smoke.data_checks import check_data
from genai.smoke.shrink import RECORDS, smoke_recipe

# The tiny Llama's tokenizer speaks ChatML like SmolLM2, with a <s> BOS.
CHATML = dataclasses.replace(
    get_family("smollm2"), bos_token="<s>", template_writes_bos=True, stop_tokens=("<|im_end|>",)
)


def checked(tokenizer, template, rows, family=CHATML, fmt="alpaca", tmp_path=None, loss_on="completion"):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from genai.recipe import DataSource

    examples = load_examples([DataSource(path=str(path), format=fmt)])
    checklist = Checklist(family.name)
    check_data(examples, tokenizer, template, loss_on, family, checklist)
    return {i.name: i for i in checklist.items}


ROWS = [{"instruction": "What is 2 + 3?", "output": "5"}, {"instruction": "Reverse the word cat.", "output": "tac"}]


def test_good_data_passes_every_item(tiny_tokenizer, tmp_path):
    items = checked(tiny_tokenizer, tiny_tokenizer.chat_template, ROWS, tmp_path=tmp_path)
    assert [i.status for i in items.values()] == ["pass"] * 5, items
    assert items["no doubled BOS"].reason == "one <s> at the start of each sample"


def test_a_template_with_no_assistant_turn_fails_the_labels_item(tiny_tokenizer, tmp_path):
    users_only = "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"
    items = checked(tiny_tokenizer, users_only, ROWS, tmp_path=tmp_path)
    assert items["labels cover only assistant turns"].status == "fail"
    assert "no trained token at all" in items["labels cover only assistant turns"].reason


def test_a_stop_token_missing_from_the_tokenizer_fails(tiny_tokenizer, tmp_path):
    family = dataclasses.replace(CHATML, stop_tokens=("<|eot_id|>",))
    items = checked(tiny_tokenizer, tiny_tokenizer.chat_template, ROWS, family=family, tmp_path=tmp_path)
    assert items["stop tokens are single tokens of the tokenizer"].status == "fail"
    assert "<|eot_id|> not in the tokenizer" in items["stop tokens are single tokens of the tokenizer"].reason
    assert items["every trained turn ends with a stop token"].status == "fail"


def test_a_template_writing_bos_twice_fails(tiny_tokenizer, tmp_path):
    items = checked(tiny_tokenizer, "{{ bos_token }}" + tiny_tokenizer.chat_template, ROWS, tmp_path=tmp_path)
    assert items["no doubled BOS"].status == "fail" and "BOS appears twice" in items["no doubled BOS"].reason


def test_the_smoke_recipe_changes_only_model_data_size_and_machine(tmp_path):
    (tmp_path / "local.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "r.yaml").write_text(
        """\
name: mine
model: {name_or_path: Qwen/Qwen2.5-0.5B-Instruct, load_in_4bit: true}
data:
  train: [{hub: yahma/alpaca-cleaned, format: alpaca, system_prompt: Be brief.}]
  eval: [{path: local.jsonl, format: alpaca}]
  max_length: 4096
lora: {r: 64, alpha: 16, use_dora: true, target_modules: [q_proj, v_proj]}
train: {learning_rate: 1.0e-4, micro_batch_size: 16, max_steps: 5000, distributed: {profile: fsdp}}
eval: {tasks: [hellaswag], gate: [{task: hellaswag, metric: "acc,none", min: 0.5}]}
"""
    )
    recipe = load_recipe(tmp_path / "r.yaml")
    smoke, changes = smoke_recipe(recipe, get_family("qwen2"), tmp_path, tmp_path / "runs")
    assert smoke.name == "mine-smoke" and smoke.model.name_or_path == "genai/tiny-qwen2"
    assert not smoke.model.load_in_4bit and any("load_in_4bit" in c for c in changes)
    # The data's format and system prompt are kept; the hub source becomes the bundled sample.
    train = smoke.data.train[0]
    assert train.hub is None and train.path.endswith("assets/smoke/alpaca.jsonl") and train.limit == RECORDS
    assert train.system_prompt == "Be brief." and any("yahma/alpaca-cleaned" in c for c in changes)
    assert smoke.data.eval[0].path == str(tmp_path / "local.jsonl")
    # The adapter is the user's, as written: that is what the smoke is for.
    assert smoke.lora == recipe.lora and smoke.train.learning_rate == 1.0e-4
    assert smoke.train.distributed.profile == "none" and smoke.train.max_steps < 20 and smoke.train.merge
    assert smoke.eval.tasks == ["hellaswag"] and smoke.eval.gate == [] and smoke.serve.port == 0


@pytest.mark.parametrize("fmt", ["alpaca", "messages", "sharegpt", "completion", "preference", "tools"])
def test_every_bundled_sample_loads_in_its_format(fmt):
    from genai.recipe import DataSource
    from genai.smoke.shrink import bundled_sample

    src = DataSource(
        path=str(bundled_sample(fmt if fmt != "tools" else "messages", tools=fmt == "tools")),
        format=fmt if fmt != "tools" else "messages",
    )
    examples = load_examples([src])
    assert len(examples) >= RECORDS
    assert all(ex.calls_tools for ex in examples) == (fmt == "tools")


class _Served:
    """A server stand-in for the thinking check alone: /tokenize answers with a given rendering."""

    def __init__(self, tokens):
        self.target = type("T", (), {"default_name": "m"})()
        self.tokens = tokens

    def post_json(self, path, body):
        assert path == "/tokenize" and body["add_generation_prompt"]
        return {"tokens": self.tokens}


@pytest.mark.slow
def test_thinking_switch_item_compares_the_trained_and_served_positions():
    from transformers import AutoTokenizer

    from genai.data.templates import with_defaults
    from genai.families import ensure_tiny_family_model
    from genai.smoke.endpoint_checks import thinking_switch

    tok = AutoTokenizer.from_pretrained(ensure_tiny_family_model("qwen3"))
    question = [{"role": "user", "content": "Spell cat."}]
    trained = with_defaults(tok.chat_template, {"enable_thinking": False})

    def rendered(on: bool) -> list[int]:
        text = tok.apply_chat_template(question, tokenize=False, add_generation_prompt=True, enable_thinking=on)
        return tok(text, add_special_tokens=False)["input_ids"]

    assert rendered(True) != rendered(False)
    for served_on, passes in ((False, True), (True, False)):  # a server on the raw template thinks
        checklist = Checklist("qwen3", [])
        thinking_switch(_Served(rendered(served_on)), tok, trained, "enable_thinking", question, checklist)
        (item,) = checklist.items
        assert (item.status == "pass") == passes, item
        assert f"served enable_thinking={served_on}" in item.reason
