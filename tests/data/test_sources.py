"""Local files of every type, s3:// against moto on loopback, hub loading, and bad data."""

import json

import pytest

from genai.data.sources import read_records
from genai.errors import GenaiError
from genai.recipe import DataSource

ROWS = [{"instruction": "Add 1 and 2.", "output": "3"}, {"instruction": "Add 2 and 2.", "output": "4"}]


def test_jsonl_json_csv_parquet_give_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "a.csv").write_text("instruction,output\nAdd 1 and 2.,3\nAdd 2 and 2.,4\n")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    for ext in ("jsonl", "json", "csv", "parquet"):
        recs = read_records(DataSource(path=str(tmp_path / f"a.{ext}")))
        assert [r.data for r in recs] == ROWS, ext
    assert read_records(DataSource(path=str(tmp_path / "a.jsonl")))[1].origin.endswith("a.jsonl:2")
    assert len(read_records(DataSource(path=str(tmp_path / "a.jsonl"), limit=1))) == 1


def test_malformed_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n" + '{"instruction": "x", "output": }\n')
    with pytest.raises(GenaiError, match=r"bad\.jsonl:2: malformed JSON"):
        read_records(DataSource(path=str(p)))


def test_unsupported_file_type(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text("hello")
    with pytest.raises(GenaiError, match="unsupported data file type '.txt'"):
        read_records(DataSource(path=str(p)))


def test_hub_source_through_datasets(tmp_path):
    # A local folder stands in for a hub id: the same `datasets.load_dataset` path, offline.
    d = tmp_path / "hubds"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    recs = read_records(DataSource(hub=str(d), split="train"))
    assert [r.data for r in recs] == ROWS


def test_unreachable_hub_dataset_is_a_clear_error():
    with pytest.raises(GenaiError, match="cannot load hub dataset 'nobody/nothing'"):
        read_records(DataSource(hub="nobody/nothing"))


@pytest.fixture()
def moto_s3(monkeypatch, tmp_path):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("GENAI_HOME", str(tmp_path / "home"))
    yield
    server.stop()


def test_s3_source_against_moto(moto_s3):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="sft/train.jsonl", Body="\n".join(json.dumps(r) for r in ROWS).encode())
    recs = read_records(DataSource(path="s3://data/sft/train.jsonl"))
    assert [r.data for r in recs] == ROWS
    with pytest.raises(GenaiError, match="no data files found"):
        read_records(DataSource(path="s3://data/missing/"))


@pytest.mark.parametrize(
    "name,content,where",
    [
        ("d.jsonl", b'{"instruction": "a", "output": "1"}\n{"instruction": "caf\xe9", "output": "2"}\n', ":2:"),
        ("d.json", b'[{"instruction": "a", "output": "1"},\n {"instruction": "caf\xe9", "output": "2"}]', ":2:"),
        ("d.csv", b"instruction,output\na,1\ncaf\xe9,2\n", ":3:"),
    ],
)
def test_non_utf8_file_names_line_and_byte_offset(tmp_path, name, content, where):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(GenaiError) as exc:
        read_records(DataSource(path=str(p)))
    offset = content.index(b"\xe9")
    assert f"{name}{where} not UTF-8 text: byte 0xe9" in exc.value.message
    assert f"byte offset {offset}" in exc.value.message
    assert "save the file as UTF-8" in exc.value.hint


def test_utf16_file_is_named_as_such(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"instruction": "a", "output": "1"}\n', encoding="utf-16")  # as PowerShell's > writes
    with pytest.raises(GenaiError, match=r"d\.jsonl:1: not UTF-8 text: it looks like UTF-16") as exc:
        read_records(DataSource(path=str(p)))
    assert "iconv -f utf-16" in exc.value.hint


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv"])
def test_utf8_bom_is_not_part_of_the_data(tmp_path, ext):
    # Windows editors and Excel's "CSV UTF-8" start the file with a BOM.
    text = {
        "jsonl": "\n".join(json.dumps(r) for r in ROWS),
        "json": json.dumps(ROWS),
        "csv": "instruction,output\nAdd 1 and 2.,3\nAdd 2 and 2.,4\n",
    }[ext]
    p = tmp_path / f"a.{ext}"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [r.data for r in read_records(DataSource(path=str(p)))] == ROWS


@pytest.mark.parametrize(
    "content,suggestion",
    [
        (b'{"instruction": "a", "output": "1"}\n', "name it .jsonl"),
        (b"instruction,output\na,1\n", "name it .csv"),
        (b"", "use a .jsonl"),
    ],
)
def test_text_named_parquet_says_it_is_not_parquet(tmp_path, content, suggestion):
    p = tmp_path / "train.parquet"
    p.write_bytes(content)
    with pytest.raises(GenaiError, match=r"train\.parquet: not a Parquet file") as exc:
        read_records(DataSource(path=str(p)))
    assert suggestion in exc.value.hint


def test_huge_jsonl_line_fails_fast_without_reading_it_into_memory(tmp_path):
    import time
    import tracemalloc

    p = tmp_path / "huge.jsonl"
    with p.open("w") as fh:
        fh.write(json.dumps(ROWS[0]) + "\n" + '{"instruction": "')
        for _ in range(100):
            fh.write("x" * 1_000_000)  # a 100 MB record: a corpus pasted into one line
        fh.write('", "output": "1"}\n')
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(GenaiError) as exc:
            read_records(DataSource(path=str(p)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5
    assert peak < 50 * 2**20  # the line is never held whole
    assert "huge.jsonl:2: record is 95.4 MiB (100,000,035 bytes) on one line," in exc.value.message
    assert "over the limit of 16.0 MiB per record" in exc.value.message


def test_huge_json_item_and_csv_field_are_capped(tmp_path, monkeypatch):
    from genai.data import sources

    monkeypatch.setattr(sources, "MAX_RECORD_BYTES", 2**20)
    big = [ROWS[0], {"instruction": "x" * 2**21, "output": "1"}]
    (tmp_path / "d.json").write_text(json.dumps(big, indent=1))
    with pytest.raises(GenaiError, match=r"d\.json:6: item 1: record is 2\.0 MiB \(2,097,\d{3} characters\), over"):
        read_records(DataSource(path=str(tmp_path / "d.json")))
    (tmp_path / "d.csv").write_text("instruction,output\na,1\n" + "x" * 2**21 + ",2\n")
    with pytest.raises(GenaiError, match=r"d\.csv:3: a field is over the limit of 1\.0 MiB per record"):
        read_records(DataSource(path=str(tmp_path / "d.csv")))


def test_csv_field_longer_than_the_csv_module_default_is_read(tmp_path):
    # csv's own limit is 128 KiB a field: a long document is normal data, not an error.
    (tmp_path / "d.csv").write_text("instruction,output\n" + "word " * 40_000 + ",1\n")
    [rec] = read_records(DataSource(path=str(tmp_path / "d.csv")))
    assert len(rec.data["instruction"]) == 200_000


def test_json_forms_and_mistakes(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"meta": {"n": [2]}, "data": ROWS, "more": 1}))
    assert [r.data for r in read_records(DataSource(path=str(p)))] == ROWS
    p.write_text(json.dumps(ROWS, indent=1))
    assert read_records(DataSource(path=str(p)))[1].origin == f"{p}:6: item 1"  # errors name the line
    p.write_text("\n".join(json.dumps(r) for r in ROWS))  # JSON Lines named .json
    with pytest.raises(GenaiError, match=r"d\.json: expected a JSON list of objects") as exc:
        read_records(DataSource(path=str(p)))
    assert "name it .jsonl" in exc.value.hint
    p.write_text(json.dumps(ROWS) + " []")
    with pytest.raises(GenaiError, match=r"d\.json:1: malformed JSON: Extra data"):
        read_records(DataSource(path=str(p)))
    p.write_text('[{"a": 1},\n 2]')
    with pytest.raises(GenaiError, match=r"d\.json:2: item 1: expected a JSON object, got int"):
        read_records(DataSource(path=str(p)))
    p.write_text("  \n")
    assert read_records(DataSource(path=str(p))) == []


def test_limit_stops_reading_early(tmp_path):
    # Records stream: with a limit, a broken tail of the file is never read.
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS)[:-1] + ", {broken")
    assert len(read_records(DataSource(path=str(p), limit=2))) == 2
