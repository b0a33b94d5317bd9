"""A tiny Llama-architecture model built offline and deterministically.

Tests and the quickstart use it like any hub model (`model.name_or_path: genai/tiny-llama`):
byte-level BPE trained on bundled text with single-digit pre-tokenization, bos/eos/pad and a
ChatML template, weights from a fixed seed, then a brief pre-training (~2 min, once) on the
mix in `tiny_mix`: sums plus letter, word and digit tasks (reverse, spell, capitals, first and
last letter, length, join, next number). It is a *base* model: it answers after a chat-shaped
prompt, but in its own style ("68." where the task wants "68") and without ever ending its turn,
so it scores ~0% exact match on any chat task until fine-tuned. LoRA on a random-weight model
cannot learn (its tied embeddings are too small to produce confident logits); LoRA on this base
learns the quickstart's sums in under a minute and simple string tasks in their own phrasing.
Sum pairs that `tiny_mix.is_held_out` selects and words that `tiny_mix.is_held_out_word` selects
are never trained on by the base.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from genai.home import genai_home
from genai.tiny_mix import draw

TINY_ID = "genai/tiny-llama"
BUILDER_VERSION = 7
BUCKETS = 8  # batches drawn together and grouped by length
PRETRAIN_THREADS = 2

BOS, EOS, PAD = "<s>", "<|im_end|>", "<pad>"
IM_START = "<|im_start|>"
END_OF_TEXT = "</s>"
SPECIAL_TOKENS = [PAD, BOS, END_OF_TEXT, IM_START, EOS]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """The tiny model's shape and its pre-training."""

    vocab_size: int = 384
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0
    pretrain_steps: int = 1800
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3


def tiny_model_dir(spec: TinySpec = TinySpec()) -> Path:
    """Where the built tiny model is cached."""
    return genai_home() / "models" / f"tiny-llama-v{BUILDER_VERSION}"


def train_byte_bpe(vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE (digits split one by one) trained on the bundled corpus; `special_tokens`
    take the first ids, in order. Shared by every tiny build so their vocabularies agree."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = resources.files("genai").joinpath("assets/tiny/corpus.txt").read_text(encoding="utf-8")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.splitlines(), trainer=trainer)
    return tok


def _train_tokenizer(spec: TinySpec):
    from transformers import PreTrainedTokenizerFast

    tok = train_byte_bpe(spec.vocab_size, SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, END_OF_TEXT],
        model_max_length=spec.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: Path, spec: TinySpec = TinySpec()) -> Path:
    """Write tokenizer, config, generation config and seeded weights (safetensors) to out_dir."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = _train_tokenizer(spec)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    _pretrain(model, tokenizer, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "genai_tiny.json").write_text(json.dumps({"builder_version": BUILDER_VERSION, **asdict(spec)}))
    return out_dir


def _pretrain(model, tokenizer, spec: TinySpec) -> None:
    """Deterministic training on chat-shaped sum questions; loss on the answer only."""
    import math
    import random

    import torch

    rng = random.Random(spec.seed)
    threads = torch.get_num_threads()
    # A fixed thread count, not the machine's: the same weights wherever it is built (same CPU kind).
    torch.set_num_threads(PRETRAIN_THREADS)
    try:
        torch.manual_seed(spec.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=spec.pretrain_lr, weight_decay=0.0)
        warmup = 100
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 0.5 * (1 + math.cos(math.pi * s / spec.pretrain_steps))),
        )
        model.train()
        # Chat-shaped prompts, but answers in a sentence that ends in a newline, never in
        # <|im_end|>: the base knows sums, not the task's answer format or when to stop.
        head = tokenizer(tokenizer.bos_token + IM_START + "user\n", add_special_tokens=False)["input_ids"]
        tail = tokenizer(EOS + "\n" + IM_START + "assistant\n", add_special_tokens=False)["input_ids"]
        batches: list[list[tuple[list[int], list[int]]]] = []
        for _ in range(spec.pretrain_steps):
            if not batches:  # draw several batches at once and group similar lengths: less padding
                drawn = [draw(rng) for _ in range(spec.pretrain_batch * BUCKETS)]
                questions = tokenizer([q for q, _ in drawn], add_special_tokens=False)["input_ids"]
                answers = tokenizer([f"{a}.\n" for _, a in drawn], add_special_tokens=False)["input_ids"]
                pairs = sorted(zip(questions, answers, strict=True), key=lambda qa: len(qa[0]) + len(qa[1]))
                batches = [pairs[i : i + spec.pretrain_batch] for i in range(0, len(pairs), spec.pretrain_batch)]
                rng.shuffle(batches)
            batch = batches.pop()
            prompts = [head + q + tail for q, _ in batch]
            answer_step(model, opt, sched, prompts, [a for _, a in batch], tokenizer.pad_token_id)
        model.eval()
    finally:
        torch.set_num_threads(threads)


def answer_step(
    model, opt, sched, prompts: list[list[int]], answers: list[list[int]], pad_id: int, *, answer_logits: bool = False
) -> None:
    """One optimizer step on a padded batch of prompt + answer rows, the loss on the answers only.

    answer_logits: run the output layer only where an answer token is predicted (with a real 150k-256k
    vocabulary, the full-row logits would be most of the step's time)."""
    import torch
    import torch.nn.functional as F

    ids = [p + a for p, a in zip(prompts, answers, strict=True)]
    labels = [[-100] * len(p) + a for p, a in zip(prompts, answers, strict=True)]
    width = max(map(len, ids))
    x = torch.tensor([r + [pad_id] * (width - len(r)) for r in ids])
    y = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r in ids])[:, None]).long()
    if answer_logits:
        from genai.training.loss import trained_loss_sum

        hidden = model.base_model(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state
        head = model.get_output_embeddings()
        cap = getattr(model.config, "final_logit_softcapping", None)
        loss = trained_loss_sum(hidden, y, head, head.weight.shape[0], cap) / (y[:, 1:] != -100).sum()
    else:
        logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def build_once(target: Path, model_id: str, build: Callable[[Path], object]) -> Path:
    """`target`, built by `build(folder)` into a temporary folder and renamed into place atomically
    on first use (a concurrent build that wins the race is kept)."""
    if (target / "genai_tiny.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))
    try:
        from genai.console import activity

        # Once per machine: say so, or the first run looks hung.
        with activity(f"building {model_id} once into {target}", f"built {model_id} in {{seconds}}"):
            build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; the cache is shared like any model folder
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "genai_tiny.json").exists():  # lost a race to a half-built dir: retry once
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_tiny_model(spec: TinySpec = TinySpec()) -> Path:
    """Return the cached tiny model folder, building it atomically on first use (~2 min on 2 cores)."""
    return build_once(tiny_model_dir(spec), TINY_ID, lambda folder: build_tiny_model(folder, spec))
