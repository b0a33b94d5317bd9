"""Where records come from: local files (jsonl/json/csv/parquet), s3:// URIs, hub datasets.

Every record carries its origin ("file:line") so format errors can point at it.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai.errors import GenaiError
from genai.recipe import DataSource

LOCAL_SUFFIXES = {".jsonl", ".json", ".csv", ".parquet"}


@dataclass
class Record:
    """One raw record and where it came from."""

    data: dict[str, Any]
    origin: str  # "path:line", "path:line: item i" (.json), "path#rowN" (.parquet) or "hub-id[split]#index"


# One record bigger than this is almost surely a mistake (a whole corpus on one line); tokenizing
# it would take minutes and many GB before failing. data.max_length caps tokens far below this anyway.
MAX_RECORD_BYTES = 16 * 2**20
_SKIP_CHUNK = 2**20


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _too_big(where: str, size: str | None) -> GenaiError:
    """A record over MAX_RECORD_BYTES; size says how big when it is known (csv stops at the first big field)."""
    what = f"record is {size}" if size else "a field is"
    return GenaiError(
        f"{where}: {what} over the limit of {_mib(MAX_RECORD_BYTES)} per record",
        hint="one record is one training example (and data.max_length keeps only its first tokens): "
        "is a whole corpus in one record? Split it into one example per line, item or row",
    )


def _not_utf8(path: Path, lineno: int, offset: int, byte: int, column: int, utf16: bool) -> GenaiError:
    what = "it looks like UTF-16 (as Windows PowerShell writes)" if utf16 else f"byte 0x{byte:02x} is not UTF-8"
    return GenaiError(
        f"{path}:{lineno}: not UTF-8 text: {what} (byte offset {offset}, column {column})",
        hint=f"save the file as UTF-8, e.g. iconv -f {'utf-16' if utf16 else 'latin1'} -t utf-8 "
        f"{path.name} > utf8-{path.name}",
    )


def _decode_line(raw: bytes, path: Path, lineno: int, offset: int) -> str:
    """One line as text; a byte that is not UTF-8 is an error naming file:line and its byte offset."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8")) + 1
        utf16 = lineno == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise _not_utf8(path, lineno, offset + exc.start, raw[exc.start], column, utf16) from None
    return text.removeprefix("\ufeff") if lineno == 1 else text  # a BOM (Windows editors) is not data


def _find_bad_utf8(path: Path) -> GenaiError:
    """After a UnicodeDecodeError somewhere in a file: the error naming its line and byte offset."""
    offset = 0
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            _decode_line(raw, path, lineno, offset)  # raises at the bad line
            offset += len(raw)
    return GenaiError(f"{path}: not UTF-8 text", hint="save the file as UTF-8")  # pragma: no cover


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a file, each line read with a bounded readline: a huge line is an error
    naming its size before it is in memory."""
    offset = 0
    with path.open("rb") as fh:
        for lineno in itertools.count(1):
            raw = fh.readline(MAX_RECORD_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                size = len(raw)
                while chunk := fh.readline(_SKIP_CHUNK):  # count the rest without keeping it
                    size += len(chunk)
                    if chunk.endswith(b"\n"):
                        break
                raise _too_big(f"{path}:{lineno}", f"{_mib(size)} ({size:,} bytes) on one line,")
            yield lineno, _decode_line(raw, path, lineno, offset)
            offset += len(raw)


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a .jsonl file, streamed; a malformed, huge or non-UTF-8 line is an error naming file:line."""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GenaiError(
                f"{path}:{lineno}: malformed JSON: {exc.msg} (column {exc.colno})",
                hint="each line of a .jsonl file must be one JSON object",
            ) from None
        if not isinstance(obj, dict):
            raise GenaiError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield Record(obj, f"{path}:{lineno}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _find_bad_utf8(path) from None


_WS = re.compile(r"[ \t\n\r]*")


def _ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _expect(text: str, pos: int, chars: str, what: str) -> int:
    if pos >= len(text) or text[pos] not in chars:
        raise json.JSONDecodeError(f"Expecting {what}", text, pos)
    return _ws(text, pos + 1)


def _list_items(text: str, pos: int, dec: json.JSONDecoder) -> Generator[tuple[int, int, Any], None, int]:
    """(start, end, value) of each item of the JSON list at text[pos], one at a time; returns where it ends."""
    pos = _expect(text, pos, "[", "'['")
    while not text.startswith("]", pos):
        value, end = dec.raw_decode(text, pos)
        yield pos, end, value
        pos = _ws(text, end)
        if not text.startswith("]", pos):
            pos = _expect(text, pos, ",", "',' delimiter")
    return _ws(text, pos + 1)


def _data_items(text: str, pos: int, dec: json.JSONDecoder, path: Path) -> Generator[tuple[int, int, Any], None, int]:
    """Items of the "data" list of the JSON object at text[pos]; its other keys are parsed and skipped."""
    found = False
    pos = _ws(text, pos + 1)
    while not text.startswith("}", pos):
        key, end = dec.raw_decode(text, pos)
        if not isinstance(key, str):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
        pos = _expect(text, _ws(text, end), ":", "':' delimiter")
        if key == "data" and not found and text.startswith("[", pos):
            found = True
            pos = yield from _list_items(text, pos, dec)
        else:
            pos = _ws(text, dec.raw_decode(text, pos)[1])
        if not text.startswith("}", pos):
            pos = _expect(text, pos, ",", "',' delimiter")
    if not found:
        raise GenaiError(
            f'{path}: expected a JSON list of objects (or {{"data": [...]}}), got an object without a "data" list',
            hint="a file with one JSON object per line is JSON Lines: name it .jsonl",
        )
    return _ws(text, pos + 1)


def _json_items(text: str, path: Path) -> Iterator[tuple[int, int, Any]]:
    """(start, end, value) of each item of a JSON list (or {"data": [...]}), parsed one item at a time so a
    huge item is caught before the next one is read."""
    dec = json.JSONDecoder()
    pos = _ws(text, 0)
    if text.startswith("[", pos):
        pos = yield from _list_items(text, pos, dec)
    elif text.startswith("{", pos):
        pos = yield from _data_items(text, pos, dec, path)
    else:
        dec.raw_decode(text, pos)  # malformed JSON fails here with its line
        raise GenaiError(f'{path}: expected a JSON list of objects (or {{"data": [...]}})')
    if pos < len(text):
        raise json.JSONDecodeError("Extra data", text, pos)


def _read_json(path: Path) -> Iterator[Record]:
    text = _read_text(path)
    if not text.strip():
        return  # no records, like an empty .jsonl file
    line, counted = 1, 0
    try:
        for i, (start, end, item) in enumerate(_json_items(text, path)):
            line, counted = line + text.count("\n", counted, start), start  # incremental: large files stay linear
            if end - start > MAX_RECORD_BYTES:
                raise _too_big(f"{path}:{line}: item {i}", f"{_mib(end - start)} ({end - start:,} characters),")
            if not isinstance(item, dict):
                raise GenaiError(f"{path}:{line}: item {i}: expected a JSON object, got {type(item).__name__}")
            yield Record(item, f"{path}:{line}: item {i}")
    except json.JSONDecodeError as exc:
        one_per_line = exc.msg == "Extra data" and exc.lineno > 1
        raise GenaiError(
            f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})",
            hint="a file with one JSON object per line is JSON Lines: name it .jsonl" if one_per_line else None,
        ) from None


def _read_csv(path: Path) -> Iterator[Record]:
    csv.field_size_limit(MAX_RECORD_BYTES)  # the default (128 KiB) is too small for long documents
    reader = None
    try:
        # utf-8-sig: Excel saves "CSV UTF-8" with a BOM, which would otherwise stick to the first column name.
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield Record(dict(row), f"{path}:{reader.line_num}")
    except UnicodeDecodeError:
        raise _find_bad_utf8(path) from None
    except csv.Error as exc:
        line = reader.reader.line_num if reader is not None else 1  # DictReader's own counts finished rows only
        if "field larger than field limit" in str(exc):
            raise _too_big(f"{path}:{line}", None) from None
        raise GenaiError(f"{path}:{line}: malformed CSV: {exc}") from None


def _guess_format(head: bytes) -> str:
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    first = text.splitlines()[0] if text else ""
    if text.startswith("{"):
        return "it looks like JSON Lines: name it .jsonl"
    if text.startswith("["):
        return "it looks like JSON: name it .json"
    if "," in first and "\ufffd" not in first:
        return "it looks like CSV: name it .csv"
    return "use a .jsonl, .json or .csv file, or write real Parquet (e.g. pandas DataFrame.to_parquet)"


def _read_parquet(path: Path) -> Iterator[Record]:
    with path.open("rb") as fh:
        head = fh.read(512)
    if not head.startswith(b"PAR1"):  # every Parquet file starts (and ends) with these magic bytes
        what = "the file is empty" if not head else "it does not start with the Parquet magic bytes 'PAR1'"
        raise GenaiError(f"{path}: not a Parquet file: {what}", hint=_guess_format(head))
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        i = 0
        for batch in pq.ParquetFile(path).iter_batches():  # row groups one at a time, not the whole table
            for row in batch.to_pylist():
                yield Record(row, f"{path}#row{i}")
                i += 1
    except (pa.ArrowException, OSError) as exc:
        raise GenaiError(
            f"{path}: cannot read this Parquet file: {exc}", hint="write it again, or export it as .jsonl"
        ) from None


READERS = {".jsonl": read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def local_files(path: Path) -> list[Path]:
    """The data files of a path: the file itself, or every data file under a folder."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES and p.is_file())
        if not files:
            raise GenaiError(f"{path}: folder has no {'/'.join(sorted(LOCAL_SUFFIXES))} files")
        return files
    if path.suffix not in READERS:
        raise GenaiError(
            f"{path}: unsupported data file type '{path.suffix}'", hint=f"use one of {', '.join(sorted(READERS))}"
        )
    return [path]


def fetch_s3(uri: str) -> Path:
    """Download an s3:// object (or prefix) into the cache, keyed by ETag, and return the local path."""
    from genai.errors import require
    from genai.home import cache_dir

    boto3 = require("boto3", "aws", "Reading s3:// data")
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise GenaiError(f"{uri}: expected s3://bucket/key")
    s3 = boto3.client("s3")
    try:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=key)
        objects = [o for o in listing.get("Contents", []) if Path(o["Key"]).suffix in LOCAL_SUFFIXES]
        if not objects:
            raise GenaiError(f"{uri}: no data files found at that S3 location")
        tag = hashlib.sha256(json.dumps(sorted((o["Key"], o["ETag"]) for o in objects)).encode()).hexdigest()[:16]
        root = cache_dir("s3") / bucket / tag
        for obj in objects:
            dest = root / obj["Key"]
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".part")
                s3.download_file(bucket, obj["Key"], str(tmp))
                tmp.rename(dest)
    except (ClientError, BotoCoreError) as exc:
        raise GenaiError(f"{uri}: cannot read from S3: {exc}") from None
    single = root / key
    return single if len(objects) == 1 and objects[0]["Key"] == key else root / key.rstrip("/")


def _hub_records(src: DataSource) -> Iterator[Record]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise GenaiError("hub datasets need the 'datasets' package") from exc
    try:
        ds = datasets.load_dataset(src.hub, src.name, split=src.split, revision=src.revision)
    except Exception as exc:  # datasets raises many types; the message is what matters to the user
        raise GenaiError(
            f"data: cannot load hub dataset '{src.hub}' (split {src.split}): {exc}",
            hint="check the id and your network, or download it and use 'path:'",
        ) from None
    for i, row in enumerate(ds):
        yield Record(dict(row), f"{src.hub}[{src.split}]#{i}")


def resolve_local(src: DataSource) -> list[Path]:
    """Local files behind a source (downloading s3:// first); empty for hub sources."""
    if src.hub:
        return []
    path = fetch_s3(src.path) if src.path.startswith("s3://") else Path(src.path)
    if not path.exists():
        raise GenaiError(f"data file not found: {src.path}")
    return local_files(path)


def read_records(src: DataSource, files: list[Path] | None = None) -> list[Record]:
    """A source's records (up to its `limit`)."""
    it: Iterator[Record]
    if src.hub:
        it = _hub_records(src)
    else:
        files = files if files is not None else resolve_local(src)
        it = (rec for f in files for rec in READERS[f.suffix](f))
    out = []
    for rec in it:
        out.append(rec)
        if src.limit and len(out) >= src.limit:
            break
    return out
