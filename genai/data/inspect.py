"""`genai preprocess --show`: print tokenized samples with trained tokens told apart."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from genai.recipe import Recipe


def render_sample(tokenizer, ids, trained, *, plain: bool = False) -> Text:
    """Trained tokens in green, masked tokens dim; newlines shown as ⏎.

    Without colours (a pipe or a file), trained runs are wrapped in [[ ]] instead.
    """
    out = Text()
    prev = False
    for tok, tr in zip(ids, trained, strict=False):
        piece = tokenizer.decode([int(tok)]).replace("\n", "⏎\n")
        if plain and tr != prev:
            out.append("[[" if tr else "]]")
        out.append(piece, style="bold green" if tr else "dim")
        prev = bool(tr)
    if plain and prev:
        out.append("]]")
    return out


def preprocess_and_show(recipe: Recipe, *, show: int = 0, use_cache: bool = True, console: Console | None = None):
    """Prepare the data (or load it from the cache), print its stats and `show` samples."""
    from genai.data.prepare import prepare
    from genai.data.templates import template_for
    from genai.models import load_tokenizer, resolve_model_path

    console = console or Console()
    tokenizer = load_tokenizer(recipe.model, resolve_model_path(recipe.model))
    template = template_for(recipe, tokenizer)
    data = prepare(recipe, tokenizer, template, use_cache=use_cache)
    for split in ("train", "eval"):
        s = data.stats.get(split)
        if s:
            console.print(
                f"{split}: {s['examples']} examples -> {s['samples']} samples, {s['tokens']} tokens "
                f"({s['trained_tokens']} trained); truncated {s['truncated']}, dropped {s['dropped']}"
            )
    # markup=False: a [bracketed] folder name is part of the path, not a rich tag
    console.print(f"cache: {'hit' if data.cache_hit else 'built'} {data.cache_dir}", markup=False)
    for i in range(min(show, len(data.train))):
        ids, trained = data.train.sample(i)
        plain = not console.is_terminal
        head = f"--- sample {i} ({len(ids)} tokens, {int(trained.sum())} trained: "
        if plain:  # no markup: rich would read the [[ ]] of the legend as a tag and print "[]"
            console.print(head + "[[trained]], the rest masked)", markup=False, highlight=False)
        else:
            console.print(head + "[bold green]green[/] trained, [dim]dim[/] masked)")
        console.print(render_sample(tokenizer, ids, trained, plain=plain))
        console.print(f"ids: {list(map(int, ids))}", style="dim", highlight=False)
    return data
