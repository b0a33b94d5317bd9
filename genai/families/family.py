"""What genai knows about one model family: how to recognise it, how it ends a turn, how it is
templated, trained with LoRA and served by vLLM, and the shape of its tiny offline build."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ATTN_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")


def frozen(mapping: Mapping | None = None, **kwargs) -> Mapping:
    """A read-only mapping (a frozen Family holds no mutable dicts)."""
    return MappingProxyType(dict(mapping or {}, **kwargs))


@dataclass(frozen=True)
class TinyShape:
    """The tiny build: the family's real architecture class, shrunk, its structural traits kept.

    `config` holds the transformers config kwargs (token ids are filled in at build time);
    `traits` names, for people and tests, the config fields that carry the family's traits."""

    architecture: str  # e.g. "Qwen3ForCausalLM", resolved in transformers at build time
    config_class: str  # e.g. "Qwen3Config"
    config: Mapping = field(default_factory=frozen)
    traits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """One model family (see genai.families.registry.FAMILIES)."""

    name: str
    title: str  # e.g. "Qwen2.5"
    real_models: tuple[str, ...]  # hub ids this family describes (examples, for the table and tests)
    model_types: tuple[str, ...]  # config.json model_type values
    architectures: tuple[str, ...]  # config.json architectures values
    name_patterns: tuple[str, ...]  # regexes on a hub id or path; decide between shared model_types
    stop_tokens: tuple[str, ...]  # generation stops at any; the first ends an assistant turn
    eos_token: str  # the tokenizer's eos_token
    bos_token: str | None  # None: the family writes no BOS
    template_writes_bos: bool  # the chat template starts with bos_token: tokenize rendered text without adding one
    pad_token: str | None  # None where the real tokenizer has none
    chat_template: str
    lora_targets: tuple[str, ...]
    tool_parser: str | None  # vLLM --tool-call-parser
    reasoning_parser: str | None  # vLLM --reasoning-parser
    thinking_switch: str | None = None  # chat-template kwarg that turns thinking on/off (Qwen3: enable_thinking)
    special_tokens: tuple[str, ...] = ()  # more special tokens the tokenizer carries (single ids, skipped on decode)
    added_tokens: tuple[str, ...] = ()  # single-id tokens that stay visible in decoded text (<tool_call>, <think>)
    # Chat-template kwargs used at train and serve time alike (Qwen3: thinking off).
    template_kwargs: Mapping = field(default_factory=frozen)
    tiny: TinyShape | None = None

    @property
    def end_of_turn(self) -> str:
        """The token that closes an assistant turn (trained on, and the first stop token)."""
        return self.stop_tokens[0]

    @property
    def tiny_id(self) -> str:
        """The built-in model id of the family's tiny build."""
        return f"genai/tiny-{self.name}"

    def stop_ids(self, tokenizer) -> list[int]:
        """The stop tokens' ids in `tokenizer`, in the family's order."""
        return [tokenizer.convert_tokens_to_ids(t) for t in self.stop_tokens]

    def matches_name(self, name_or_path: str) -> bool:
        """True when a hub id or path looks like this family's."""
        return any(re.search(p, name_or_path) for p in self.name_patterns)

    def all_special_tokens(self) -> tuple[str, ...]:
        """Every token the tokenizer must hold as one id: bos/eos/pad, the stop tokens, the rest."""
        seen: dict[str, None] = {}
        for tok in (self.pad_token, self.bos_token, self.eos_token, *self.stop_tokens, *self.special_tokens):
            if tok is not None:
                seen.setdefault(tok)
        return tuple(seen)

    def summary(self) -> dict:
        """The family as plain data (the `genai families --json` row)."""
        return {
            "name": self.name,
            "title": self.title,
            "real_models": list(self.real_models),
            "model_types": list(self.model_types),
            "architectures": list(self.architectures),
            "name_patterns": list(self.name_patterns),
            "stop_tokens": list(self.stop_tokens),
            "eos_token": self.eos_token,
            "bos_token": self.bos_token,
            "template_writes_bos": self.template_writes_bos,
            "pad_token": self.pad_token,
            "thinking_switch": self.thinking_switch,
            "template_kwargs": dict(self.template_kwargs),
            "lora_targets": list(self.lora_targets),
            "tool_parser": self.tool_parser,
            "reasoning_parser": self.reasoning_parser,
            "tiny_build": self.tiny_id if self.tiny else None,
            "tiny_architecture": self.tiny.architecture if self.tiny else None,
        }
