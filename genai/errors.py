"""One error type for everything a user can fix: the CLI prints it once and exits 2."""

from __future__ import annotations

EXIT_USER_ERROR = 2


class GenaiError(Exception):
    """Bad input or environment: message names the file/field/line and what to do."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


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
