"""Chat templates: a registry of named templates, or a .jinja file, or the tokenizer's own.

The chosen template is saved into the artifact, so eval and serve render prompts exactly as
training did.
"""

from __future__ import annotations

from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import Recipe

# Formats whose examples are conversations, rendered with a chat template.
CHAT_FORMATS = {"alpaca", "messages", "sharegpt", "preference", "unpaired"}

TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        " + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    # Plain-text template for base models without chat tokens; turns end with the EOS token.
    "alpaca": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
    ),
}


def resolve_template(name_or_path: str | None, tokenizer) -> str:
    """The template text a recipe asks for; falls back to the tokenizer's own."""
    if name_or_path:
        if name_or_path in TEMPLATES:
            return TEMPLATES[name_or_path]
        path = Path(name_or_path)
        if path.suffix == ".jinja":
            try:
                return path.read_text(encoding="utf-8")
            except OSError as exc:
                raise GenaiError(f"model.chat_template: cannot read {path}: {exc.strerror}") from None
        raise GenaiError(
            f"model.chat_template: unknown template '{name_or_path}'",
            hint=f"use one of {', '.join(TEMPLATES)} or a path to a .jinja file",
        )
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # some tokenizers ship several named templates
        template = template.get("default")
    if not template:
        raise GenaiError(
            "model: the tokenizer has no chat template and the recipe names none",
            hint="set model.chat_template (e.g. chatml or alpaca), or use format: completion",
        )
    return template


def _literal(value: bool | int | float | str) -> str:
    """A Jinja literal (true/false, numbers, quoted strings)."""
    import json

    return str(value).lower() if isinstance(value, bool) else json.dumps(value)


def with_defaults(template: str, kwargs: dict) -> str:
    """The template with `kwargs` as defaults of its variables: training renders with them, and the
    artifact carries them, so a server that passes no chat_template_kwargs renders the same prompt
    (a request may still set them)."""
    head = "".join(
        f"{{%- if {name} is not defined %}}{{%- set {name} = {_literal(value)} %}}{{%- endif %}}"
        for name, value in kwargs.items()
    )
    return head + template


def template_for(recipe: Recipe, tokenizer) -> str | None:
    """The chat template a recipe trains with: needed by chat-format data or a named template, else None."""
    chat = any(s.format in CHAT_FORMATS for s in [*recipe.data.train, *recipe.data.eval])
    if chat or recipe.model.chat_template:
        return with_defaults(resolve_template(recipe.model.chat_template, tokenizer), recipe.model.chat_template_kwargs)
    return None
