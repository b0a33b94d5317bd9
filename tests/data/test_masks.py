"""Label masks for every format: exactly the response (plus its stop token) is trained."""

import pytest

from genai.data.formats import to_example
from genai.data.sources import Record
from genai.data.templates import TEMPLATES, resolve_template
from genai.data.tokenize import tokenize_example
from genai.errors import GenaiError
from genai.recipe import DataSource


def trained_text(tok, t):
    return "".join(tok.decode([i]) for i, m in zip(t.input_ids, t.trained, strict=False) if m)


def tokenize(tok, fmt, data, loss_on="completion", template=None, **src):
    ex = to_example(Record(data, "mem:1"), DataSource(path="x", format=fmt, **src))
    return tokenize_example(tok, template or resolve_template(None, tok), ex, loss_on)


def test_alpaca(tiny_tokenizer):
    t = tokenize(tiny_tokenizer, "alpaca", {"instruction": "Add 2 and 3.", "input": "", "output": "5"})
    assert trained_text(tiny_tokenizer, t) == "5<|im_end|>\n"
    assert tiny_tokenizer.decode(t.input_ids).startswith("<s><|im_start|>user\nAdd 2 and 3.<|im_end|>")


def test_messages_multi_turn_trains_every_assistant_turn(tiny_tokenizer):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    t = tokenize(tiny_tokenizer, "messages", {"messages": msgs})
    assert trained_text(tiny_tokenizer, t) == "Hello<|im_end|>\n4<|im_end|>\n"


def test_sharegpt_mapping(tiny_tokenizer):
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]
    t = tokenize(tiny_tokenizer, "sharegpt", {"conversations": conv})
    assert trained_text(tiny_tokenizer, t) == "Yo<|im_end|>\n"


def test_completion_text_and_prompt_completion(tiny_tokenizer):
    t = tokenize(tiny_tokenizer, "completion", {"text": "hello world"})
    assert trained_text(tiny_tokenizer, t) == "hello world<|im_end|>"  # all but the first token (BOS)
    assert t.input_ids[0] == tiny_tokenizer.bos_token_id and not t.trained[0]
    t = tokenize(tiny_tokenizer, "completion", {"prompt": "1 + 1 =", "completion": " 2"})
    assert trained_text(tiny_tokenizer, t) == " 2<|im_end|>"


def test_preference_trains_on_chosen(tiny_tokenizer):
    ex = to_example(
        Record({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}, "m:1"),
        DataSource(path="x", format="preference"),
    )
    assert ex.rejected[-1]["content"] == "Go away"
    t = tokenize(tiny_tokenizer, "preference", {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"})
    assert trained_text(tiny_tokenizer, t) == "Hello<|im_end|>\n"


def test_preference_as_whole_conversations_shares_their_prompt():
    """Anthropic HH-RLHF's layout: chosen and rejected are whole conversations, the prompt what they share."""
    talk = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "2+2?"},
    ]
    rec = {
        "chosen": [*talk, {"role": "assistant", "content": "4"}],
        "rejected": [*talk, {"role": "assistant", "content": "5"}],
    }
    ex = to_example(Record(rec, "hh:1"), DataSource(path="x", format="preference"))
    assert ex.messages == rec["chosen"] and ex.rejected == rec["rejected"]
    rec["rejected"] = [
        talk[0],
        {"role": "assistant", "content": "Go away"},
        talk[2],
        {"role": "assistant", "content": "5"},
    ]
    with pytest.raises(GenaiError, match="differ only in their final assistant turn"):
        to_example(Record(rec, "hh:2"), DataSource(path="x", format="preference"))


def test_loss_on_all_trains_everything_but_the_first_token(tiny_tokenizer):
    t = tokenize(tiny_tokenizer, "alpaca", {"instruction": "x", "output": "y"}, loss_on="all")
    assert not t.trained[0] and all(t.trained[1:])


def test_column_mapping_and_system_prompt(tiny_tokenizer):
    t = tokenize(
        tiny_tokenizer,
        "alpaca",
        {"q": "Add 1 and 1.", "a": "2"},
        columns={"instruction": "q", "output": "a"},
        system_prompt="You add.",
    )
    text = tiny_tokenizer.decode(t.input_ids)
    assert "<|im_start|>system\nYou add.<|im_end|>" in text and trained_text(tiny_tokenizer, t) == "2<|im_end|>\n"


def test_named_template_without_stop_token_gets_eos(tiny_tokenizer):
    t = tokenize(tiny_tokenizer, "alpaca", {"instruction": "x", "output": "y"}, template=TEMPLATES["alpaca"])
    assert trained_text(tiny_tokenizer, t).startswith("y<|im_end|>")


@pytest.mark.parametrize(
    "fmt,data,needle",
    [
        ("alpaca", {"instruction": "x"}, "missing field 'output' required by format 'alpaca'"),
        ("messages", {"messages": [{"role": "user", "content": "x"}]}, "no assistant message"),
        ("messages", {"messages": [{"role": "robot", "content": "x"}]}, "unknown role 'robot'"),
        ("sharegpt", {"conversations": [{"from": "alien", "value": "x"}]}, "unknown speaker 'alien'"),
        ("completion", {"prompt": "x"}, "missing field 'completion'"),
    ],
)
def test_missing_or_bad_fields_name_the_field_and_format(tiny_tokenizer, fmt, data, needle):
    with pytest.raises(GenaiError, match="mem:1: ") as exc:
        tokenize(tiny_tokenizer, fmt, data)
    assert needle in str(exc.value)


def test_template_from_a_jinja_file_and_unknown_name(tiny_tokenizer, tmp_path):
    f = tmp_path / "t.jinja"
    f.write_text(
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% if m['role'] == 'assistant' %}"
        "{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    template = resolve_template(str(f), tiny_tokenizer)
    t = tokenize(tiny_tokenizer, "alpaca", {"instruction": "hi", "output": "yo"}, template=template)
    assert tiny_tokenizer.decode(t.input_ids) == "[user] hi\n[assistant] yo<|im_end|>\n"
    assert trained_text(tiny_tokenizer, t) == "yo<|im_end|>\n"
    with pytest.raises(GenaiError, match="unknown template 'nope'"):
        resolve_template("nope", tiny_tokenizer)
