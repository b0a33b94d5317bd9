"""One error type for everything a user can fix, and the exit codes of every verb.

The CLI prints a GenaiError once (message, then hint) and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What `genai` exits with."""

    OK = 0
    FAILED = 1  # an unexpected failure (a bug, or a crash below genai): the traceback says where
    USER_ERROR = 2  # bad input or environment: the message names the file, field or line, and what to do
    GATE_FAILED = 3  # `genai eval` / `genai run`: a gate rule failed (nothing was served)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class GenaiError(Exception):
    """Bad input or environment: message names the file/field/line and what to do."""

    exit_code = ExitCode.USER_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class Interrupted(GenaiError):
    """Ctrl-C: stopped on the user's request; the message says how to continue."""

    exit_code = ExitCode.INTERRUPTED


class MissingExtraError(GenaiError):
    """An optional heavy dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed.",
            hint=f"pip install 'genai[{extra}]'",
        )


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise a MissingExtraError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc
