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
