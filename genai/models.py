"""Load the base model and tokenizer a recipe names, and wrap it for LoRA/DoRA/QLoRA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import LoraSection, ModelSection, Recipe

# Built-in model ids resolved offline to a local folder (built on first use).
BUILTIN_MODELS: dict[str, Callable[[], Path]] = {}


def _register_builtins() -> None:
    from genai import tiny

    BUILTIN_MODELS[tiny.TINY_ID] = tiny.ensure_tiny_model
    # One tiny build per model family; a lambda per id: nothing is built (or torch imported) here.
    from genai.families import FAMILIES, ensure_tiny_family_model

    for name, family in FAMILIES.items():
        BUILTIN_MODELS[family.tiny_id] = lambda name=name: ensure_tiny_family_model(name)


_register_builtins()


def resolve_model_path(model: ModelSection) -> str:
    """A local folder for built-ins, else the id/path as given (transformers resolves hub ids)."""
    if model.name_or_path in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[model.name_or_path]())
    return model.name_or_path


def start_model_path(recipe: Recipe) -> str:
    """The model a recipe starts from: its model, or for a chained recipe (genai.parents) its parent as a
    standalone model (what eval scores as "before" and a full fine-tune or a merged model builds on)."""
    from genai.parents import find_parent

    parent = find_parent(recipe)
    return str(parent.model_dir()) if parent else resolve_model_path(recipe.model)


def _hub_kwargs(model: ModelSection) -> dict:
    return {"revision": model.revision, "trust_remote_code": model.trust_remote_code}


def load_tokenizer(model: ModelSection, path: str | None = None):
    """The recipe's tokenizer (with a pad token); a clear error when it cannot be loaded."""
    from transformers import AutoTokenizer

    path = path or resolve_model_path(model)
    try:
        tok = AutoTokenizer.from_pretrained(path, **_hub_kwargs(model))
    except OSError as exc:
        raise GenaiError(
            f"model.name_or_path: cannot load tokenizer for '{model.name_or_path}': {exc}",
            hint="check the id or path; offline, point it at a local copy",
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # batching needs a pad id; padded labels are masked anyway
    return tok


def torch_dtype(name: str):
    """model.dtype as a torch dtype ('auto': bf16/fp16 on GPUs, fp32 on CPU)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # CPU training in fp32: bf16 matmuls are slow on most CPUs
    return getattr(torch, name)


def soft_capping_attention(path: str | Path, **hub_kwargs) -> str | None:
    """'eager' for a model that soft-caps its attention logits (Gemma 2), else None (transformers' default).

    transformers' default sdpa attention skips the soft-capping without a word: such a model would
    train and score as a different function from the one vLLM serves (on the tiny Gemma 2, log-probs
    off by 3e-3 where eager agrees with vLLM to 1e-6)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), **hub_kwargs)
    except (OSError, ValueError):
        return None  # loading the model itself reports what is wrong
    return "eager" if getattr(config, "attn_logit_softcapping", None) else None


def load_model(model: ModelSection, path: str | None = None, *, for_training: bool = True):
    """The base model from safetensors (4-bit for QLoRA); a clear error when it cannot be loaded."""
    import torch
    from transformers import AutoModelForCausalLM

    path = path or resolve_model_path(model)
    kwargs = dict(_hub_kwargs(model), dtype=torch_dtype(model.dtype), use_safetensors=True)
    attention = model.attn_implementation or soft_capping_attention(path, **_hub_kwargs(model))
    if attention:
        kwargs["attn_implementation"] = attention
    if model.load_in_4bit:
        if not torch.cuda.is_available():
            raise GenaiError(
                "model.load_in_4bit: QLoRA needs a CUDA GPU; this machine has none",
                hint="set model.load_in_4bit: false to train LoRA in full precision on CPU",
            )
        from transformers import BitsAndBytesConfig

        from genai.errors import require

        require("bitsandbytes", "qlora", "QLoRA (model.load_in_4bit)")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    try:
        m = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise GenaiError(
            f"model.name_or_path: cannot load '{model.name_or_path}': {exc}",
            hint="models load from safetensors only; check the id/path and network",
        ) from None
    if for_training:
        m.config.use_cache = False
    return m


def lora_config(lora: LoraSection):
    """PEFT's LoraConfig for the recipe's `lora` section."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        use_dora=lora.use_dora,
        modules_to_save=lora.modules_to_save or None,
        task_type=TaskType.CAUSAL_LM,
        bias="none",
    )


def wrap_for_training(
    model, lora: LoraSection, *, quantized: bool, gradient_checkpointing: bool, adapter: Path | None = None
):
    """LoRA/DoRA adapters via PEFT (new, or a parent run's `adapter` trained further), or the full model with
    every weight trainable."""
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not lora.enabled:
        if quantized:
            raise GenaiError("model.load_in_4bit needs lora.enabled: true (QLoRA trains adapters only)")
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    if adapter is not None:  # a chained run continues its parent's adapter (its own rank and targets)
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    try:
        return get_peft_model(model, lora_config(lora))
    except ValueError as exc:
        raise GenaiError(
            f"lora.target_modules: {exc}", hint="use 'all-linear' or names of the model's linear layers"
        ) from None
