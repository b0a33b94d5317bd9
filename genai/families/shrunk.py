"""The real model, shrunk: when a recipe's model files are at hand (a local folder, the Hugging Face
cache, or the hub when it answers), the smoke trains on the real tokenizer (its vocabulary, special
tokens and chat template) and the real config with the family's tiny dimensions, seeded and briefly
pre-trained like the tiny builds. Only the small files are fetched (config, tokenizer, templates),
never the weights; a build is cached under $GENAI_HOME/models by the sha256 of those files.
Without them the smoke uses the family's tiny build (genai/tiny-<family>)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from genai.families.build import BUILDER_VERSION, build_model
from genai.families.family import Family
from genai.families.pretrain import Pretrain
from genai.home import genai_home
from genai.recipe import ModelSection

# The files a shrunk build reads; weights are never fetched.
SMALL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
# Real config keys that describe the checkpoint, not the architecture: not carried into the build.
_CHECKPOINT_KEYS = (
    "_name_or_path",
    "architectures",
    "auto_map",
    "dtype",
    "torch_dtype",
    "quantization_config",
    "transformers_version",
    "use_cache",
)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")
    )


def real_files(model: ModelSection) -> tuple[Path | None, str]:
    """(folder with the real config and tokenizer, where from) or (None, why not)."""
    if model.name_or_path.startswith("genai/"):
        return None, "a built-in model"
    folder = Path(model.name_or_path).expanduser()
    if folder.is_dir():
        return (folder, "the local folder") if _has_tokenizer(folder) else (None, "no config and tokenizer in it")
    from huggingface_hub import snapshot_download

    from genai.doctor import hub_reachable

    def fetch(local_only: bool) -> Path | None:
        try:
            path = Path(
                snapshot_download(
                    model.name_or_path,
                    revision=model.revision,
                    allow_patterns=list(SMALL_FILES),
                    local_files_only=local_only,
                )
            )
        except Exception:  # noqa: BLE001 - not cached, gated, unknown: the tiny build stands in
            return None
        return path if _has_tokenizer(path) else None

    if (path := fetch(True)) is not None:
        return path, "the Hugging Face cache"
    if not hub_reachable():
        return None, "offline, and not in the Hugging Face cache"
    if (path := fetch(False)) is not None:
        return path, "the hub"
    return None, "the hub did not give its config and tokenizer (gated? set HF_TOKEN)"


def shrunk_dir(family: Family, real: Path) -> Path:
    """Where the shrunk build of these real files is cached."""
    digest = hashlib.sha256(f"{family.name} v{BUILDER_VERSION}".encode())
    for name in SMALL_FILES:
        if (real / name).is_file():
            digest.update(name.encode() + (real / name).read_bytes())
    return genai_home() / "models" / f"shrunk-{family.name}-{digest.hexdigest()[:16]}"


def shrunk_config(family: Family, real: dict, tokenizer):
    """The real config with the family's tiny dimensions (and traits) over it, in fp32."""
    import transformers

    real = real.get("text_config", real)  # a multimodal checkpoint's language model
    tiny = {k: (dict(v) if hasattr(v, "keys") else v) for k, v in family.tiny.config.items()}
    merged = {k: v for k, v in real.items() if k not in _CHECKPOINT_KEYS and k != "model_type"}
    merged.update(tiny)
    if "layer_types" in real and "layer_types" not in tiny:  # one entry per layer: as many as the build has
        merged["layer_types"] = real["layer_types"][: merged["num_hidden_layers"]]
    merged["vocab_size"] = max(int(real.get("vocab_size") or 0), len(tokenizer))
    ids = tokenizer.convert_tokens_to_ids
    merged.update(
        bos_token_id=ids(family.bos_token) if family.bos_token else None,
        eos_token_id=ids(family.eos_token),
        pad_token_id=tokenizer.pad_token_id,
        architectures=[family.tiny.architecture],
    )
    return getattr(transformers, family.tiny.config_class)(**merged)


def ensure_shrunk_model(family: Family, real: Path) -> Path:
    """The cached shrunk build of the real files in `real` (built on first use)."""
    from genai.tiny import build_once

    target = shrunk_dir(family, real)

    def build(folder: Path) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(real)
        config = shrunk_config(family, json.loads((real / "config.json").read_text()), tokenizer)
        build_model(family, folder, tokenizer, config, Pretrain(answer_logits=True), source=str(real))

    return build_once(target, f"{family.title} (real tokenizer and config, shrunk)", build)
