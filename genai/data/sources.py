"""Where records come from: local files (jsonl/json/csv/parquet), s3:// URIs, hub datasets.

Every record carries its origin ("file:line") so format errors can point at it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
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
    origin: str  # "path:line" or "hub-id[split]#index"


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a .jsonl file; a malformed line is an error naming file:line."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
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


def _read_json(path: Path) -> Iterator[Record]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GenaiError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise GenaiError(f'{path}: expected a JSON list of objects (or {{"data": [...]}})')
    for i, item in enumerate(obj):
        if not isinstance(item, dict):
            raise GenaiError(f"{path}: item {i}: expected a JSON object, got {type(item).__name__}")
        yield Record(item, f"{path}[{i}]")


def _read_csv(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            yield Record(dict(row), f"{path}:{i + 2}")  # +1 header, +1 one-based


def _read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield Record(row, f"{path}#row{i}")


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
