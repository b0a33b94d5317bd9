"""Tool-calling data: OpenAI `tools` and assistant `tool_calls` rendered by the template and trained."""

import json

import pytest

from genai.data.formats import to_example
from genai.data.sources import Record
from genai.data.tokenize import tokenize_example
from genai.errors import GenaiError
from genai.recipe import DataSource

# Hermes-style, as Qwen's templates render tools: schemas in the system turn, calls as <tool_call> JSON.
HERMES = (
    "{{ bos_token }}"
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %}\n{{ t.function | tojson }}{% endfor %}<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.content %}{{ m.content }}{% endif %}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ {'name': c.function.name, 'arguments': c.function.arguments}"
    " | tojson }}</tool_call>{% endfor %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def record(arguments='{"city": "Paris"}'):
    return {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "21 degrees."},
        ],
    }


def example(data):
    return to_example(Record(data, "tools.jsonl:3"), DataSource(path="x", format="messages"))


def test_tool_calls_are_rendered_in_the_trained_turn_and_tools_in_the_prompt(tiny_tokenizer):
    ex = example(record())
    assert ex.calls_tools and ex.tools == [WEATHER]
    # JSON-string arguments become an object, so templates render them as JSON, not as a quoted string.
    assert ex.messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    t = tokenize_example(tiny_tokenizer, HERMES, ex, "completion")
    trained = "".join(tiny_tokenizer.decode([i]) for i, m in zip(t.input_ids, t.trained, strict=True) if m)
    assert trained == '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|im_end|>\n' + (
        "21 degrees.<|im_end|>\n"
    )
    prompt = tiny_tokenizer.decode(t.input_ids)
    assert json.dumps(WEATHER["function"]) in prompt  # the schema is offered, and never trained
    assert '{"temp": 21}' in prompt


def test_plain_conversations_do_not_count_as_tool_data(tiny_tokenizer):
    ex = example({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})
    assert not ex.calls_tools and ex.tools is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            record(arguments="{city: Paris}"),
            "tools.jsonl:3: message 1: tool_calls[0].function.arguments is not valid JSON",
        ),
        (record(arguments="[1]"), "tool_calls[0].function.arguments must be a JSON object"),
        (
            {**record(), "tools": [{"name": "get_weather"}]},
            "tools.jsonl:3: 'tools' must be a list of OpenAI tool schemas",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": None, "tool_calls": [{}]},
                ]
            },
            "tools.jsonl:3: message 1: tool_calls[0] needs function.name",
        ),
    ],
)
def test_malformed_tool_data_is_one_clear_error(data, message):
    with pytest.raises(GenaiError) as e:
        example(data)
    assert message in str(e.value)


def test_a_template_that_drops_tool_calls_is_a_clear_error(tiny_tokenizer):
    # The tiny Llama's ChatML template renders content only: the call would train as an empty turn.
    with pytest.raises(GenaiError) as e:
        tokenize_example(tiny_tokenizer, tiny_tokenizer.chat_template, example(record()), "completion")
    assert "tools.jsonl:3: the chat template drops tool_calls" in str(e.value) and "get_weather" in str(e.value)


def test_a_template_that_rerenders_past_turns_trains_one_sample_per_turn(tiny_tokenizer):
    """Qwen3's template drops a past turn's thinking block once a later turn exists: each assistant
    turn becomes its own sample, after exactly the prompt the server renders for it."""
    from genai.data.tokenize import render_chat, tokenize_turns
    from genai.families.registry import get_family

    template = get_family("qwen3").chat_template
    ex = example(record())
    samples = tokenize_turns(tiny_tokenizer, template, ex, "completion")
    assert len(samples) == 2
    for sample, i in zip(samples, (1, 3), strict=True):
        prompt = render_chat(tiny_tokenizer, template, ex.messages[:i], True, ex.tools)
        masked = [t for t, m in zip(sample.input_ids, sample.trained, strict=True) if not m]
        assert tiny_tokenizer.decode(masked) == prompt
    trained = [tiny_tokenizer.decode([t for t, m in zip(s.input_ids, s.trained, strict=True) if m]) for s in samples]
    assert '"name": "get_weather"' in trained[0] and trained[1].endswith("21 degrees.<|im_end|>\n")


def test_template_switches_are_trained_and_baked_into_the_artifacts_template(tiny_tokenizer, tmp_path):
    """model.chat_template_kwargs (Qwen3's enable_thinking) render the training prompts and become the
    defaults of the template the artifact carries, so a server passing nothing renders the same."""
    from genai.data.templates import template_for
    from genai.families.registry import get_family
    from genai.recipe import load_recipe

    (tmp_path / "q.jinja").write_text(get_family("qwen3").chat_template)
    (tmp_path / "d.jsonl").write_text('{"instruction": "hi", "output": "yo"}\n')
    (tmp_path / "r.yaml").write_text(
        "name: q\nmodel: {name_or_path: x, chat_template: q.jinja, chat_template_kwargs: {enable_thinking: false}}\n"
        "data: {train: [{path: d.jsonl}]}\n"
    )
    template = template_for(load_recipe(tmp_path / "r.yaml"), tiny_tokenizer)
    msgs = [{"role": "user", "content": "hi"}]
    off = tiny_tokenizer.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    on = tiny_tokenizer.apply_chat_template(
        msgs, chat_template=template, tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    assert on.endswith("<|im_start|>assistant\n")  # a request can still turn it on


def test_a_template_switch_name_must_be_an_identifier(tmp_path):
    from genai.errors import GenaiError
    from genai.recipe import load_recipe

    (tmp_path / "d.jsonl").write_text('{"instruction": "hi", "output": "yo"}\n')
    (tmp_path / "r.yaml").write_text(
        "name: q\nmodel: {name_or_path: x, chat_template_kwargs: {enable thinking: false}}\n"
        "data: {train: [{path: d.jsonl}]}\n"
    )
    with pytest.raises(GenaiError, match="model.chat_template_kwargs"):
        load_recipe(tmp_path / "r.yaml")
