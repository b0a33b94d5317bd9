"""What `genai train`, `eval` and `run` print, and their log, RUN/logs/<verb>.log.

Quiet by default: the libraries' own progress bars (tqdm in lm-eval, datasets, transformers, the
hub) are hidden; on a terminal each stage shows one live rich bar or spinner instead, and off a
terminal genai's own lines only. `genai --verbose` shows the libraries' output as it comes.

Every line of the console (library warnings and tracebacks included) also goes to the run's log as
it is written, so a failed run can be read afterwards. `setup()` (the CLI, before any library is
imported) sets the libraries' switches and puts a tee in front of sys.stdout and sys.stderr; the tee
keeps lines in memory until the run folder is known, then `attach()` writes them and every later one.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VERBOSE_ENV = "GENAI_VERBOSE"
LOGGED_VERBS = ("train", "eval", "run")  # the verbs with a run folder
# Quiet by default; the serving verbs keep vLLM's own progress (generate shows it on purpose).
QUIET_VERBS = (*LOGGED_VERBS, "preprocess", "merge")
# Read by tqdm, huggingface_hub (transformers follows it) and datasets when they are imported.
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_SECRET = re.compile(r"(?i)^([\w.-]*(?:key|token|secret|password)[\w.-]*=).+")
_KEPT = 10_000  # lines kept in memory before the run folder is known
_lock = threading.RLock()
_live = None  # the rich Console of the live bar on screen: tee'd lines are printed above it


def verbose() -> bool:
    """`genai --verbose` (or GENAI_VERBOSE=1): show the libraries' own output."""
    return os.environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false", "no")


class LogFile:
    """Lines to a log file, each time-stamped, colour codes removed, a line redrawn with \\r kept once."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._kept: deque[str] = deque(maxlen=_KEPT)
        self._partial = ""
        self._fh = None

    def feed(self, text: str) -> None:
        """Some console text; complete lines are written (or kept until `open`)."""
        *lines, rest = (self._partial + _ANSI.sub("", text)).split("\n")
        self._partial = _visible(rest)
        for line in lines:
            self._emit(_visible(line).rstrip())

    def _emit(self, line: str) -> None:
        record = f"{time.strftime('%H:%M:%S')} {line}\n"
        if self._fh is None:
            self._kept.append(record)
        else:
            self._fh.write(record)
            self._fh.flush()

    def open(self, path: Path) -> None:
        """Append to `path` from now on, after a header line and the lines kept so far."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self.path = path
        self._fh.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} {command_line()} =====\n")
        self._fh.writelines(self._kept)
        self._fh.flush()
        self._kept.clear()

    def close(self) -> None:
        """Write an unfinished last line and close (idempotent)."""
        if self._partial.strip():
            self._emit(self._partial)
        self._partial = ""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _visible(line: str) -> str:
    """What a terminal shows of a line redrawn after carriage returns: its last non-blank part."""
    parts = [p for p in line.split("\r") if p.strip()]
    return parts[-1] if parts else ""


def command_line() -> str:
    """This process's command line, values of key/token/secret/password overrides hidden."""
    args = [_SECRET.sub(r"\1***", a) for a in sys.argv[1:]]
    return " ".join([Path(sys.argv[0]).name if sys.argv else "python", *args])


class Tee:
    """A text stream in front of sys.stdout or sys.stderr: writes go on to it and to a LogFile.

    Quiet, it drops tqdm's progress bars (lm-eval's ignore TQDM_DISABLE): tqdm redraws a bar with
    one write per frame that starts with a carriage return (rich's start with \\r and a colour
    code); those frames and the bar's final newline are not shown. While a live bar is on screen,
    lines are printed above it."""

    def __init__(self, stream, log: LogFile, *, quiet: bool):
        self.stream, self.log, self.quiet = stream, log, quiet
        self._in_bar = False
        self._pending = ""

    def write(self, text: str) -> int:
        """Write to the stream and the log (quiet: not a progress-bar frame)."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.quiet and self._bar_frame(text):
            return len(text)
        with _lock:
            self.log.feed(text)
            if _live is not None and self.stream.isatty():  # a redirected stdout is not under the bar
                self._above_live(text)
            else:
                self.stream.write(text)
        return len(text)

    def _bar_frame(self, text: str) -> bool:
        if text.startswith("\r") and not text.startswith("\r\x1b"):
            self._in_bar = True
            return True
        if self._in_bar and not _ANSI.sub("", text).strip():  # the bar's closing newline, cursor moves
            return bool(text)
        if text:
            self._in_bar = False
        return False

    def _above_live(self, text: str) -> None:
        from rich.text import Text

        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            _live.print(Text.from_ansi(line), soft_wrap=True)

    def release(self) -> None:
        """A live bar ended: write what waited for the end of its line."""
        if self._pending:
            self.stream.write(self._pending)
            self._pending = ""

    def flush(self) -> None:
        """Flush the stream (the log writes each line as it comes)."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the stream behind is a terminal."""
        return self.stream.isatty()

    def fileno(self) -> int:
        """The stream's file descriptor."""
        return self.stream.fileno()

    def writable(self) -> bool:
        """Always."""
        return True

    @property
    def encoding(self) -> str:
        """The stream's encoding."""
        return getattr(self.stream, "encoding", "utf-8")

    @property
    def errors(self) -> str:
        """The stream's error handler."""
        return getattr(self.stream, "errors", "strict")

    def __getattr__(self, name: str):
        if name == "buffer":  # bytes written there would bypass the log
            raise AttributeError(name)
        return getattr(self.stream, name)


class _Session:
    """The CLI command's tee: sys.stdout and sys.stderr to one log, opened once the run is known."""

    def __init__(self, verb: str, log: LogFile, quiet: bool):
        self.verb, self.log = verb, log
        self.out = Tee(sys.stdout, log, quiet=quiet)
        self.err = Tee(sys.stderr, log, quiet=quiet)
        sys.stdout, sys.stderr = self.out, self.err


_session: _Session | None = None


def setup(verb: str | None, *, verbose_output: bool) -> None:
    """The CLI's start, before any library is imported: quiet libraries for the verbs that train,
    score or prepare (unless verbose) and, for the verbs with a run folder, the tee whose lines
    `attach` sends to RUN/logs/<verb>.log."""
    global _session
    if verbose_output:
        os.environ[VERBOSE_ENV] = "1"
    if verb in LOGGED_VERBS:
        log = LogFile()
        _session = _Session(verb, log, quiet=not verbose())
        atexit.register(log.close)
    if verbose():
        # The libraries' info lines (lm-eval, accelerate, ...) on stderr, through the tee.
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif verb in QUIET_VERBS:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)


def _active() -> _Session | None:
    # A test harness may have swapped the streams since: then the session no longer sees the console.
    return _session if _session is not None and sys.stderr is _session.err else None


def attach(run_dir: Path) -> None:
    """From now on (and the lines so far), this command's console goes to RUN/logs/<verb>.log.

    A no-op outside the CLI's logged verbs, and after the first run folder (`genai run`: one log)."""
    session = _active()
    if session is not None and session.log.path is None:
        session.log.open(Path(run_dir) / "logs" / f"{session.verb}.log")


@contextmanager
def run_log(run_dir: Path, verb: str) -> Iterator[None]:
    """The console of this block in the run's log: the CLI command's log when there is one, else
    RUN/logs/<verb>.log through a tee for the block (launched workers, the Python API)."""
    if _active() is not None:
        attach(run_dir)
        yield
        return
    log = LogFile()
    log.open(Path(run_dir) / "logs" / f"{verb}.log")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Tee(sys.stdout, log, quiet=not verbose()), Tee(sys.stderr, log, quiet=not verbose())
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        log.close()


def log_only(line: str) -> None:
    """A line for the log but not the screen (what a live bar already shows)."""
    if isinstance(sys.stderr, Tee):
        with _lock:
            sys.stderr.log.feed(line + "\n")


def terminal():
    """A rich Console on the real stderr when it is a terminal and output is quiet; else None
    (plain lines: no live bar fighting the libraries' own bars, nothing redrawn in a pipe)."""
    stream = sys.stderr
    while isinstance(stream, Tee):
        stream = stream.stream
    if verbose() or not stream.isatty():
        return None
    from rich.console import Console

    return Console(file=stream)


def start_bar(*columns, transient: bool = False):
    """A started rich Progress with these columns on the terminal, or None off a terminal.

    Lines printed while it is on screen appear above it and go to the log (stop it with `stop_bar`)."""
    term = terminal()
    if term is None:
        return None
    from rich.progress import Progress

    routed = isinstance(sys.stdout, Tee) and isinstance(sys.stderr, Tee)  # else rich redirects them itself
    bar = Progress(*columns, console=term, transient=transient, redirect_stdout=not routed, redirect_stderr=not routed)
    bar.start()
    if routed:
        global _live
        _live = bar.console
    return bar


def stop_bar(bar) -> None:
    """Stop a bar from `start_bar` (None: nothing to do)."""
    global _live
    if bar is None:
        return
    with _lock:
        bar.stop()
        if _live is bar.console:
            _live = None
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, Tee):
                    stream.release()


def echo(line: str) -> None:
    """A line on stderr (above a live bar, and in the log)."""
    print(line, file=sys.stderr, flush=True)


@contextmanager
def activity(doing: str, done: str) -> Iterator[None]:
    """A spinner with the time taken on a terminal (a `doing ...` line otherwise) while the block
    runs, then the `done` line with the seconds it took ("{seconds}" in `done`)."""
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    start = time.perf_counter()
    bar = start_bar(SpinnerColumn(), TextColumn(doing), TimeElapsedColumn(), transient=True)
    if bar is None:
        echo(f"{doing} ...")
    else:
        bar.add_task(doing, total=None)
        log_only(f"{doing} ...")
    try:
        yield
    finally:
        stop_bar(bar)
    echo(done.format(seconds=f"{time.perf_counter() - start:.1f}s"))
