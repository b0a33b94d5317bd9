"""The known model families, and finding one by name, hub id, path or config."""

from __future__ import annotations

import json
from pathlib import Path

from genai.errors import GenaiError
from genai.families import chat_templates as templates
from genai.families.family import ATTN_TARGETS, MLP_TARGETS, Family, TinyShape, frozen

LLAMA_TARGETS = ATTN_TARGETS + MLP_TARGETS

# The tiny builds keep each family's traits at a width of ~64: the GQA ratio (heads : kv heads),
# tied embeddings, RoPE, sliding window, q/k norm, soft-capping, qkv bias, explicit head_dim.
_SMALL = frozen(hidden_size=64, intermediate_size=128, num_hidden_layers=2, dtype="float32")

FAMILIES: dict[str, Family] = {}


def _register(family: Family) -> None:
    FAMILIES[family.name] = family


_register(
    Family(
        name="llama3",
        title="Llama 3.x",
        real_models=("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        model_types=("llama",),
        architectures=("LlamaForCausalLM",),
        name_patterns=(r"(?i)llama-?3",),
        stop_tokens=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
        eos_token="<|eot_id|>",
        bos_token="<|begin_of_text|>",
        template_writes_bos=True,
        pad_token=None,
        chat_template=templates.LLAMA3,
        lora_targets=LLAMA_TARGETS,
        tool_parser="llama3_json",
        reasoning_parser=None,
        special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"),
        tiny=TinyShape(
            "LlamaForCausalLM",
            "LlamaConfig",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=1,  # Llama-3.2-1B: 32 heads, 8 kv heads
                head_dim=32,  # vLLM's CPU attention takes head sizes 32, 64, 80, ... only
                tie_word_embeddings=True,  # 1B and 3B tie; 8B does not
                max_position_embeddings=131072,
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 32.0,
                    "high_freq_factor": 4.0,
                    "low_freq_factor": 1.0,
                    "original_max_position_embeddings": 8192,
                },
                attention_bias=False,
                mlp_bias=False,
            ),
            ("num_key_value_heads", "tie_word_embeddings", "rope_parameters"),
        ),
    )
)

_register(
    Family(
        name="qwen2",
        title="Qwen2.5",
        real_models=("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
        model_types=("qwen2",),
        architectures=("Qwen2ForCausalLM",),
        name_patterns=(r"(?i)qwen2(\.5)?(?!\.?[0-9]*-?vl)",),
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
        eos_token="<|im_end|>",
        bos_token=None,
        template_writes_bos=False,
        pad_token="<|endoftext|>",
        chat_template=templates.QWEN2,
        lora_targets=LLAMA_TARGETS,
        tool_parser="hermes",
        reasoning_parser=None,
        special_tokens=("<|im_start|>",),
        added_tokens=("<tool_call>", "</tool_call>"),
        tiny=TinyShape(
            "Qwen2ForCausalLM",
            "Qwen2Config",
            frozen(
                _SMALL,
                hidden_size=224,  # 7 heads of 32: vLLM's CPU attention takes no smaller head
                num_attention_heads=7,
                num_key_value_heads=1,  # Qwen2.5-0.5B: 14 heads, 2 kv heads
                tie_word_embeddings=True,  # 0.5B-3B tie
                max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                use_sliding_window=False,  # off, as in the hub config (whose sliding_window: 32768
                sliding_window=None,  # transformers drops when use_sliding_window is false)
                max_window_layers=2,
            ),
            ("num_key_value_heads", "tie_word_embeddings", "use_sliding_window", "sliding_window", "qkv bias"),
        ),
    )
)

_register(
    Family(
        name="qwen3",
        title="Qwen3",
        real_models=("Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B"),
        model_types=("qwen3",),
        architectures=("Qwen3ForCausalLM",),
        name_patterns=(r"(?i)qwen3(?!-?(vl|moe|next|coder-?30b))",),
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
        eos_token="<|im_end|>",
        bos_token=None,
        template_writes_bos=False,
        pad_token="<|endoftext|>",
        chat_template=templates.QWEN3,
        lora_targets=LLAMA_TARGETS,
        tool_parser="hermes",
        reasoning_parser="qwen3",
        thinking_switch="enable_thinking",
        template_kwargs=frozen(enable_thinking=False),
        special_tokens=("<|im_start|>",),
        added_tokens=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"),
        tiny=TinyShape(
            "Qwen3ForCausalLM",
            "Qwen3Config",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=2,  # Qwen3-0.6B: 16 heads, 8 kv heads
                head_dim=32,  # explicit and wider than hidden/heads, as Qwen3-0.6B (128 vs 64)
                tie_word_embeddings=True,
                max_position_embeddings=40960,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                attention_bias=False,
                use_sliding_window=False,
                sliding_window=None,
                max_window_layers=2,
            ),
            ("num_key_value_heads", "head_dim", "tie_word_embeddings", "q_norm/k_norm"),
        ),
    )
)

# Gemma 2 and 3 share one tokenizer convention: <bos> written by the template, turns closed by
# <end_of_turn>, no tool-call format.
_GEMMA_TOKENS = dict(
    stop_tokens=("<end_of_turn>", "<eos>"),
    eos_token="<eos>",
    bos_token="<bos>",
    template_writes_bos=True,
    pad_token="<pad>",
    special_tokens=("<start_of_turn>",),
)

_register(
    Family(
        name="gemma3",
        title="Gemma 3 (text)",
        real_models=("google/gemma-3-1b-it", "google/gemma-3-270m-it"),
        model_types=("gemma3_text", "gemma3"),
        architectures=("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"),
        name_patterns=(r"(?i)gemma-?3(?!n)",),
        **_GEMMA_TOKENS,
        chat_template=templates.GEMMA3,
        lora_targets=LLAMA_TARGETS,
        tool_parser=None,
        reasoning_parser=None,
        tiny=TinyShape(
            "Gemma3ForCausalLM",
            "Gemma3TextConfig",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=1,  # gemma-3-1b: 4 heads, 1 kv head
                head_dim=32,  # vLLM's CPU attention takes head sizes 32, 64, 80, ... only
                query_pre_attn_scalar=16,
                tie_word_embeddings=True,
                max_position_embeddings=32768,
                sliding_window=512,
                layer_types=["sliding_attention", "full_attention"],  # 5:1 in the real model; one of each here
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                final_logit_softcapping=None,
                attn_logit_softcapping=None,
            ),
            ("num_key_value_heads", "layer_types", "sliding_window", "rope_parameters", "q_norm/k_norm"),
        ),
    )
)

_register(
    Family(
        name="gemma2",
        title="Gemma 2",
        real_models=("google/gemma-2-2b-it", "google/gemma-2-9b-it"),
        model_types=("gemma2",),
        architectures=("Gemma2ForCausalLM",),
        name_patterns=(r"(?i)gemma-?2",),
        **_GEMMA_TOKENS,
        chat_template=templates.GEMMA2,
        lora_targets=LLAMA_TARGETS,
        tool_parser=None,
        reasoning_parser=None,
        tiny=TinyShape(
            "Gemma2ForCausalLM",
            "Gemma2Config",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=2,  # gemma-2-2b: 8 heads, 4 kv heads
                head_dim=32,  # vLLM's CPU attention takes head sizes 32, 64, 80, ... only
                query_pre_attn_scalar=16,
                tie_word_embeddings=True,
                max_position_embeddings=8192,
                sliding_window=4096,
                layer_types=["sliding_attention", "full_attention"],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                attn_logit_softcapping=50.0,
                final_logit_softcapping=30.0,
            ),
            ("num_key_value_heads", "layer_types", "attn_logit_softcapping", "final_logit_softcapping"),
        ),
    )
)

_register(
    Family(
        name="mistral",
        title="Mistral 7B v0.3",
        real_models=("mistralai/Mistral-7B-Instruct-v0.3",),
        model_types=("mistral",),
        architectures=("MistralForCausalLM",),
        name_patterns=(r"(?i)mistral(?!.*(small-3|nemo|magistral|pixtral))",),
        stop_tokens=("</s>",),
        eos_token="</s>",
        bos_token="<s>",
        template_writes_bos=True,
        pad_token=None,
        chat_template=templates.MISTRAL,
        lora_targets=LLAMA_TARGETS,
        tool_parser="mistral",
        reasoning_parser=None,
        special_tokens=(
            "<unk>",
            "[INST]",
            "[/INST]",
            "[TOOL_CALLS]",
            "[AVAILABLE_TOOLS]",
            "[/AVAILABLE_TOOLS]",
            "[TOOL_RESULTS]",
            "[/TOOL_RESULTS]",
        ),
        tiny=TinyShape(
            "MistralForCausalLM",
            "MistralConfig",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=1,  # 32 heads, 8 kv heads
                head_dim=32,  # vLLM's CPU attention takes head sizes 32, 64, 80, ... only
                tie_word_embeddings=False,
                max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                sliding_window=None,  # v0.3 has the field, null (v0.1 had 4096)
            ),
            ("num_key_value_heads", "tie_word_embeddings", "sliding_window"),
        ),
    )
)

_register(
    Family(
        name="phi3",
        title="Phi-3.5 / Phi-4-mini",
        real_models=("microsoft/Phi-4-mini-instruct", "microsoft/Phi-3.5-mini-instruct"),
        model_types=("phi3",),
        architectures=("Phi3ForCausalLM",),
        name_patterns=(r"(?i)phi-?(3|4)",),
        stop_tokens=("<|end|>", "<|endoftext|>"),
        eos_token="<|endoftext|>",
        bos_token=None,
        template_writes_bos=False,
        pad_token="<|endoftext|>",
        chat_template=templates.PHI3,
        lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),  # fused projections
        tool_parser="phi4_mini_json",
        reasoning_parser=None,
        special_tokens=(
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|tool|>",
            "<|/tool|>",
            "<|tool_call|>",
            "<|/tool_call|>",
            "<|tool_response|>",
        ),
        tiny=TinyShape(
            "Phi3ForCausalLM",
            "Phi3Config",
            frozen(
                _SMALL,
                hidden_size=96,
                num_attention_heads=3,
                num_key_value_heads=1,  # Phi-4-mini: 24 heads, 8 kv heads
                tie_word_embeddings=True,
                max_position_embeddings=131072,
                original_max_position_embeddings=4096,
                rope_parameters={
                    "rope_type": "longrope",
                    "rope_theta": 10000.0,
                    "partial_rotary_factor": 0.75,
                    # rotary dims 32 * 0.75 = 24: 12 factors each (the real ones vary per dim)
                    "short_factor": [1.0] * 12,
                    "long_factor": [1.0] * 12,
                },
                sliding_window=262144,
            ),
            ("num_key_value_heads", "tie_word_embeddings", "rope_parameters", "fused qkv_proj/gate_up_proj"),
        ),
    )
)

_register(
    Family(
        name="smollm2",
        title="SmolLM2",
        real_models=("HuggingFaceTB/SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"),
        model_types=("llama",),
        architectures=("LlamaForCausalLM",),
        name_patterns=(r"(?i)smollm2?",),
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
        eos_token="<|im_end|>",
        bos_token=None,
        template_writes_bos=False,
        pad_token="<|im_end|>",
        chat_template=templates.SMOLLM2,
        lora_targets=LLAMA_TARGETS,
        tool_parser=None,
        reasoning_parser=None,
        special_tokens=("<|im_start|>",),
        tiny=TinyShape(
            "LlamaForCausalLM",
            "LlamaConfig",
            frozen(
                _SMALL,
                num_attention_heads=4,
                num_key_value_heads=4,  # 1.7B: no GQA (32/32)
                head_dim=32,  # vLLM's CPU attention takes head sizes 32, 64, 80, ... only
                tie_word_embeddings=True,
                max_position_embeddings=8192,
                rope_parameters={"rope_type": "default", "rope_theta": 130000.0},
            ),
            ("num_key_value_heads", "tie_word_embeddings", "rope_parameters"),
        ),
    )
)


def get_family(name: str) -> Family:
    """The family called `name`; a GenaiError (exit 2) listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise GenaiError(
            f"unknown model family '{name}'; known families: {', '.join(FAMILIES)}",
            hint="`genai families` lists them with what each needs",
        ) from None


def _read_config(name_or_path: str) -> dict | None:
    path = Path(name_or_path) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _tokens_in(name_or_path: str) -> str:
    """The text of a local tokenizer_config.json (llama3 and SmolLM2 share model_type llama)."""
    try:
        return (Path(name_or_path) / "tokenizer_config.json").read_text(encoding="utf-8")
    except OSError:
        return ""


def detect_family(name_or_path: str, config: dict | None = None) -> Family:
    """The family of a hub id, local folder or config dict.

    A config's model_type / architectures narrow it down; where several families share one
    (llama: Llama 3 and SmolLM2) the name, then the tokenizer's special tokens, decide. A
    GenaiError listing the known families when nothing matches."""
    config = config if config is not None else _read_config(name_or_path)
    candidates = list(FAMILIES.values())
    if config:
        model_type = config.get("model_type") or (config.get("text_config") or {}).get("model_type")
        archs = set(config.get("architectures") or ())
        by_config = [f for f in candidates if model_type in f.model_types or archs & set(f.architectures)]
        if by_config:
            candidates = by_config
    if len(candidates) == 1:
        return candidates[0]
    by_name = [f for f in candidates if f.matches_name(name_or_path)]
    if len(by_name) >= 1:
        return by_name[0]
    tokens = _tokens_in(name_or_path)
    by_tokens = [f for f in candidates if tokens and all(t in tokens for t in f.stop_tokens[:1])]
    if len(candidates) < len(FAMILIES) and by_tokens:
        return by_tokens[0]
    raise GenaiError(
        f"cannot tell the model family of '{name_or_path}'; known families: {', '.join(FAMILIES)}",
        hint="name it explicitly, or check that config.json has a model_type genai knows",
    )
