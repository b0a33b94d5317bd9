"""Entry point of each launched training process: `python -m genai.training.worker RUN_DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genai.errors import GenaiError
from genai.recipe import load_recipe
from genai.runs import RECIPE_FILE


def main(argv: list[str] | None = None) -> int:
    """Train the run folder's recipe in this launched process."""
    parser = argparse.ArgumentParser(prog="genai.training.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume-from", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        from genai.runs import Run
        from genai.training.trainer import Trainer

        recipe = load_recipe(args.run_dir / RECIPE_FILE)
        Trainer(recipe, Run(args.run_dir), args.resume_from).train()
    except GenaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
