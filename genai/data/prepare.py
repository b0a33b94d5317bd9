"""Recipe data section -> tokenized train/eval sets, cached by a content hash."""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genai.data import cache
from genai.data.formats import Example, to_example
from genai.data.methods import LAYOUTS
from genai.data.pack import TokenizedSet
from genai.data.sources import read_records, resolve_local
from genai.data.tokenize import Tokenized, tokenize_final_turn, tokenize_turns, turn_stop_tokens
from genai.errors import GenaiError
from genai.home import cache_dir
from genai.recipe import DataSection, DataSource, Recipe

# The recipe's own upper bound on data.max_length: a hint never suggests more.
MAX_LENGTH_LIMIT = next(m.le for m in DataSection.model_fields["max_length"].metadata if hasattr(m, "le"))


@dataclass
class Prepared:
    """Tokenized train (and eval) sets, their stats, and whether they came from the cache."""

    train: TokenizedSet
    eval: TokenizedSet | None
    stats: dict
    cache_hit: bool
    cache_dir: Path = field(default=Path())


def _source_fingerprint(src: DataSource) -> dict:
    base = src.model_dump(mode="json")
    if src.hub:
        import datasets

        ds = datasets.load_dataset(src.hub, src.name, split=src.split, revision=src.revision)
        return {**base, "fingerprint": ds._fingerprint}
    return {**base, "files": [(str(p), cache.file_sha256(p)) for p in resolve_local(src)]}


def data_file_hashes(recipe: Recipe) -> dict[str, str]:
    """sha256 of every local data file the recipe reads (lineage for the manifest)."""
    out = {}
    for src in [*recipe.data.train, *recipe.data.eval]:
        if src.path:
            for p in resolve_local(src):
                out[str(p)] = cache.file_sha256(p)
    return out


def _tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    text += repr((tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.all_special_tokens))
    return hashlib.sha256(text.encode()).hexdigest()


_warned: set[str] = set()  # split_examples runs more than once per training: say each warning once


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        print(f"warning: {text}", file=sys.stderr, flush=True)


def _where(src: DataSource) -> str:
    return src.path or f"{src.hub} [{src.split}]"


def ends_with_answer(ex: Example) -> bool:
    """Whether an example has something to learn at its end (a chat must end with the assistant)."""
    return ex.messages is None or ex.messages[-1]["role"] == "assistant"


def load_examples(sources: list[DataSource]) -> list[Example]:
    """Every record of the sources as an Example.

    A chat whose last turn is not the assistant's has no answer to learn at its end: it is skipped,
    with a warning that counts them; a source where every record is skipped is an error."""
    out = []
    for src in sources:
        total = skipped = 0
        for rec in read_records(src):
            ex = to_example(rec, src)
            total += 1
            if not ends_with_answer(ex):
                skipped += 1
                continue
            out.append(ex)
        if skipped and skipped == total:
            raise GenaiError(
                f"{_where(src)}: all {total} records end with a turn that is not the assistant's: nothing to train on",
                hint=f"each conversation must end with the assistant's answer; check the roles and "
                f"data.*.format (now '{src.format}')",
            )
        if skipped:
            _warn_once(f"skipped {skipped} of {total} records of {_where(src)} whose last turn is not the assistant's")
    return out


def split_examples(recipe: Recipe) -> tuple[list[Example], list[Example]]:
    """Train and eval examples; eval comes from data.eval or a seeded share of train."""
    train = load_examples(recipe.data.train)
    if not train:
        raise GenaiError(
            f"data.train: the dataset is empty: no records in {', '.join(_where(s) for s in recipe.data.train)}",
            hint="check that the file has records (.jsonl: one JSON object per line)",
        )
    evals = load_examples(recipe.data.eval)
    if not evals and recipe.data.eval_fraction > 0:
        idx = list(range(len(train)))
        random.Random(recipe.train.seed).shuffle(idx)
        n_eval = max(1, int(len(train) * recipe.data.eval_fraction))
        held = set(idx[:n_eval])
        evals = [ex for i, ex in enumerate(train) if i in held]
        train = [ex for i, ex in enumerate(train) if i not in held]
    return train, evals


def _all_dropped(split: str, n: int, longest: int, recipe: Recipe) -> GenaiError:
    """Every sample was too long: the hint names a max_length that fits them (above the current one)."""
    max_len, overlong = recipe.data.max_length, recipe.data.overlong
    fits = min(1 << (longest - 1).bit_length(), MAX_LENGTH_LIMIT)  # the next power of two
    why = "dropped" if overlong == "drop" else "truncated to no trained tokens (the answers come after the cut)"
    other = " or data.overlong=truncate to keep the start of each" if overlong == "drop" else ""
    raise_to = f"set data.max_length={fits}{other}, or " if fits > max_len else ""
    return GenaiError(
        f"data.{split}: all {n} samples are longer than data.max_length={max_len} tokens and were {why}",
        hint=f"the longest has {longest} tokens: {raise_to}shorten the samples",
    )


def _fit(
    units: list[list[Tokenized]],
    recipe: Recipe,
    split: str,
    n_examples: int,
    stats: dict,
    kept_units: list[int] | None = None,
) -> TokenizedSet:
    """Keep units (a sample, or a preference pair: dropped or truncated whole) within data.max_length; the
    indices of the units kept are appended to `kept_units`."""
    max_len, overlong = recipe.data.max_length, recipe.data.overlong
    kept: list[Tokenized] = []
    truncated = dropped = longest = 0
    for u, unit in enumerate(units):
        longest = max(longest, *(len(t.input_ids) for t in unit))
        if any(len(t.input_ids) > max_len for t in unit):
            if overlong == "drop":
                dropped += 1
                continue
            unit = [Tokenized(t.input_ids[:max_len], t.trained[:max_len]) for t in unit]
            truncated += 1
            if not all(any(t.trained) for t in unit):
                dropped += 1  # truncation removed every trained token: nothing to learn
                continue
        kept.extend(unit)
        if kept_units is not None:
            kept_units.append(u)
    stats[split] = {
        "examples": n_examples,
        "samples": len(kept),
        "truncated": truncated,
        "dropped": dropped,
        "tokens": sum(len(t.input_ids) for t in kept),
        "trained_tokens": sum(sum(t.trained) for t in kept),
    }
    if n_examples and not kept:
        raise _all_dropped(split, n_examples, longest, recipe)
    return _flat(kept)


def _tokenize_all(
    examples: list[Example], tokenizer, template, recipe: Recipe, split: str, stats: dict, stops: set[int]
) -> TokenizedSet:
    units = []
    per_turn = 0
    for ex in examples:
        toks = tokenize_turns(tokenizer, template, ex, recipe.data.loss_on)
        per_turn += len(toks) > 1
        for tok in toks:
            stops |= turn_stop_tokens(tokenizer, tok)
            units.append([tok])
    if per_turn:
        _warn_once(
            f"{split}: {per_turn} conversations trained one assistant turn per sample: the chat template "
            "renders earlier turns differently once a later turn exists (as Qwen3 drops past thinking)"
        )
    return _fit(units, recipe, split, len(examples), stats)


def _tokenize_pairs(
    examples: list[Example], tokenizer, template, recipe: Recipe, split: str, stats: dict, stops: set[int]
) -> TokenizedSet:
    """Preference pairs as consecutive samples: 2i the chosen answer, 2i+1 the rejected one."""
    units = []
    for ex in examples:
        pair = [tokenize_final_turn(tokenizer, template, ex, m) for m in (ex.messages, ex.rejected)]
        stops |= turn_stop_tokens(tokenizer, pair[0])
        units.append(pair)
    out = _fit(units, recipe, split, len(examples), stats)
    stats[split]["pairs"] = len(out) // 2
    return out


def _tokenize_final(
    examples: list[Example], tokenizer, template, recipe: Recipe, split: str, stats: dict, stops: set[int]
) -> TokenizedSet:
    """One sample per record: its prompt, and only its final answer trained (RL: the reference answer)."""
    units = []
    for ex in examples:
        if ex.messages is not None:
            tok = tokenize_final_turn(tokenizer, template, ex, ex.messages)
        else:
            tok = tokenize_turns(tokenizer, template, ex, "completion")[0]
        stops |= turn_stop_tokens(tokenizer, tok)
        units.append([tok])
    out = _fit(units, recipe, split, len(examples), stats)
    stats[split]["prompts"] = len(out)
    return out


def _tokenize_kto(
    examples: list[Example], tokenizer, template, recipe: Recipe, split: str, stats: dict, stops: set[int]
) -> TokenizedSet:
    """Per record: 2i its answer, 2i+1 its prompt with the next record's answer (KTO's KL estimate); the
    records' labels go to the stats (`labels`, one per record kept)."""
    units = []
    for i, ex in enumerate(examples):
        other = examples[(i + 1) % len(examples)].messages[-1]
        pair = [tokenize_final_turn(tokenizer, template, ex, m) for m in (ex.messages, ex.messages[:-1] + [other])]
        stops |= turn_stop_tokens(tokenizer, pair[0])
        units.append(pair)
    kept: list[int] = []
    out = _fit(units, recipe, split, len(examples), stats, kept)
    labels = np.array([bool(examples[k].label) for k in kept])
    out.labels = np.repeat(labels, 2)  # a record's two samples share its label
    stats[split]["desirable"] = int(labels.sum())
    stats[split]["undesirable"] = int(len(labels) - labels.sum())
    return out


TOKENIZERS = {"turns": _tokenize_all, "pairs": _tokenize_pairs, "final": _tokenize_final, "kto": _tokenize_kto}


def _flat(kept: list[Tokenized]) -> TokenizedSet:
    lengths = np.array([len(t.input_ids) for t in kept], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.fromiter((i for t in kept for i in t.input_ids), dtype=np.int32, count=int(offsets[-1]))
    trained = np.fromiter((m for t in kept for m in t.trained), dtype=bool, count=int(offsets[-1]))
    return TokenizedSet(ids, trained, offsets)


def prepare(recipe: Recipe, tokenizer, template: str | None, *, use_cache: bool = True) -> Prepared:
    """Tokenize train/eval data, or load them from the cache when nothing that matters changed."""
    root = Path(recipe.data.cache_dir) if recipe.data.cache_dir else cache_dir("data")
    key = cache.cache_key(
        {
            "train": [_source_fingerprint(s) for s in recipe.data.train],
            "eval": [_source_fingerprint(s) for s in recipe.data.eval],
            "eval_fraction": recipe.data.eval_fraction,
            "seed": recipe.train.seed if recipe.data.eval_fraction and not recipe.data.eval else None,
            "tokenizer": _tokenizer_fingerprint(tokenizer),
            "template": template,
            "max_length": recipe.data.max_length,
            "overlong": recipe.data.overlong,
            "loss_on": recipe.data.loss_on,
            "layout": LAYOUTS[recipe.train.method],
        }
    )
    if use_cache:
        hit = cache.load(root, key)
        if hit is not None:
            sets, stats = hit
            return Prepared(sets["train"], sets.get("eval"), stats, True, root / key)
    train_ex, eval_ex = split_examples(recipe)
    stats: dict = {"key": key}
    stops: set[int] = set()
    tokenize = TOKENIZERS[LAYOUTS[recipe.train.method]]
    sets = {"train": tokenize(train_ex, tokenizer, template, recipe, "train", stats, stops)}
    if eval_ex:
        sets["eval"] = tokenize(eval_ex, tokenizer, template, recipe, "eval", stats, stops)
    stats["stop_token_ids"] = sorted(stops)
    # Trained on tool calls: serving turns on the family's tool-call parser for this artifact.
    stats["tool_calls"] = sum(ex.calls_tools for ex in train_ex)
    if use_cache:
        cache.save(root, key, sets, stats)
    return Prepared(sets["train"], sets.get("eval"), stats, False, root / key)
