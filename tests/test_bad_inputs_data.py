"""What a user gets wrong in a recipe or its data: each is one error naming the file, the field or the
line, exit code 2, no traceback, nothing on stdout and no cache written.

The cases run `genai.cli.main()` in this process (what the console script runs: it turns a GenaiError
into "error: ..." and exit code 2), so the table stays fast; one case also runs the real console script.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import genai_cli

ROW = {"instruction": "Add 1 and 1.", "output": "2"}
JSONL = (json.dumps(ROW) + "\n").encode()
ANSWERED = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def recipe(path: str = "d.jsonl", fmt: str = "alpaca", extra: str = "") -> str:
    # line 6: the source's path, line 7: its format
    return (
        "name: t\nmodel:\n  name_or_path: genai/tiny-llama\ndata:\n  train:\n"
        f"    - path: {path}\n      format: {fmt}\n{extra}"
    )


def chats(*conversations) -> bytes:
    return "".join(json.dumps({"messages": c}) + "\n" for c in conversations).encode()


V, P = "validate", "preprocess"
# name: (verb, files to write (the recipe is "r.yaml"), arguments after the verb, expected in stderr
# where {tmp} is the folder of the files)
CASES = {
    # ---- the recipe file itself
    "recipe-missing": (V, {}, ["nope.yaml"], "nope.yaml: recipe file not found"),
    "recipe-is-a-folder": (V, {}, ["."], "is a folder, not a recipe file"),
    "recipe-is-binary": (V, {"logo.png": b"\x89PNG\r\n\x1a\n\x00"}, ["logo.png"], "logo.png:1: not a text file"),
    "recipe-has-nul-bytes": (V, {"r.yaml": b"name: t\n\x00\x00"}, ["r.yaml"], "r.yaml:2: not a text file: byte 0x00"),
    "recipe-is-a-data-file": (V, {"d.jsonl": JSONL}, ["d.jsonl"], "d.jsonl: this is a data file, not a recipe"),
    "recipe-empty": (V, {"r.yaml": "# nothing yet\n"}, ["r.yaml"], "r.yaml: the recipe is empty"),
    "recipe-invalid-yaml": (V, {"r.yaml": "name: t\nmodel: [x\n"}, ["r.yaml"], "r.yaml:3: invalid YAML"),
    "recipe-not-a-mapping": (V, {"r.yaml": "- name: t\n"}, ["r.yaml"], "r.yaml:1: a recipe must be a mapping"),
    "recipe-no-data-section": (
        V,
        {"r.yaml": "name: t\nmodel: {name_or_path: x}\n"},
        ["r.yaml"],
        "data: required field",
    ),
    "unknown-key": (
        V,
        {"r.yaml": recipe(extra="  max_lenght: 64\n"), "d.jsonl": JSONL},
        ["r.yaml"],
        "r.yaml:8: data.max_lenght: unknown key 'max_lenght'; did you mean 'max_length'?",
    ),
    "unknown-format": (
        V,
        {"r.yaml": recipe(fmt="chatml"), "d.jsonl": JSONL},
        ["r.yaml"],
        "r.yaml:7: data.train.0.format: Input should be 'alpaca'",
    ),
    "path-and-hub": (
        V,
        {"r.yaml": recipe(extra="      hub: org/set\n"), "d.jsonl": JSONL},
        ["r.yaml"],
        "data.train.0: Value error, give exactly one of 'path'",
    ),
    "data-file-missing": (
        V,
        {"r.yaml": recipe("nope.jsonl")},
        ["r.yaml"],
        "r.yaml:6: data.train.0.path: file not found",
    ),
    "override-without-equals": (
        V,
        {"r.yaml": recipe(), "d.jsonl": JSONL},
        ["r.yaml", "lora.r"],
        "override 'lora.r': expected",
    ),
    "override-index-out-of-range": (
        V,
        {"r.yaml": recipe(), "d.jsonl": JSONL},
        ["r.yaml", "data.train.3.path=x.jsonl"],
        "override 'data.train.3.path=x.jsonl': index 3 is out of range (list has 1 items)",
    ),
    "override-bad-value": (
        V,
        {"r.yaml": recipe(), "d.jsonl": JSONL},
        ["r.yaml", "train.epochs=-1"],
        "command-line override: train.epochs: Input should be greater than 0",
    ),
    "override-unknown-key": (
        V,
        {"r.yaml": recipe(), "d.jsonl": JSONL},
        ["r.yaml", "train.learnig_rate=1e-4"],
        "command-line override: train.learnig_rate: unknown key 'learnig_rate'; did you mean 'learning_rate'?",
    ),
    # ---- the data files
    "jsonl-not-utf8": (
        P,
        {"r.yaml": recipe(), "d.jsonl": JSONL + '{"instruction": "café", "output": "1"}\n'.encode("latin-1")},
        ["r.yaml"],
        f"d.jsonl:2: not UTF-8 text: byte 0xe9 is not UTF-8 (byte offset {len(JSONL) + 20}, column 21)",
    ),
    "csv-not-utf8": (
        P,
        {"r.yaml": recipe("d.csv"), "d.csv": "instruction,output\ncafé,1\n".encode("latin-1")},
        ["r.yaml"],
        "d.csv:2: not UTF-8 text: byte 0xe9 is not UTF-8 (byte offset 22",
    ),
    "json-not-utf8": (
        P,
        {"r.yaml": recipe("d.json"), "d.json": '[\n{"instruction": "café", "output": "1"}]'.encode("latin-1")},
        ["r.yaml"],
        "d.json:2: not UTF-8 text: byte 0xe9",
    ),
    "text-named-parquet": (
        P,
        {"r.yaml": recipe("d.parquet"), "d.parquet": JSONL},
        ["r.yaml"],
        "d.parquet: not a Parquet file",
    ),
    "jsonl-named-json": (
        P,
        {"r.yaml": recipe("d.json"), "d.json": JSONL + JSONL},
        ["r.yaml"],
        "d.json: expected a JSON list of objects",
    ),
    "unsupported-suffix": (
        P,
        {"r.yaml": recipe("d.txt"), "d.txt": JSONL},
        ["r.yaml"],
        "d.txt: unsupported data file type",
    ),
    "folder-without-data": (
        P,
        {"r.yaml": recipe("sub"), "sub/notes.txt": b"x"},
        ["r.yaml"],
        "sub: folder has no .csv/.json/.jsonl/.parquet files",
    ),
    "empty-data-file": (
        P,
        {"r.yaml": recipe(), "d.jsonl": b"\n\n"},
        ["r.yaml"],
        "data.train: the dataset is empty: no records in {tmp}/d.jsonl",
    ),
    "malformed-jsonl-line": (
        P,
        {"r.yaml": recipe(), "d.jsonl": JSONL + b'{"instruction": "a", "output": }\n'},
        ["r.yaml"],
        "d.jsonl:2: malformed JSON: Expecting value (column 32)",
    ),
    "jsonl-line-not-an-object": (
        P,
        {"r.yaml": recipe(), "d.jsonl": b'["Add 1 and 1.", "2"]\n'},
        ["r.yaml"],
        "d.jsonl:1: expected a JSON object, got list",
    ),
    "missing-field": (
        P,
        {"r.yaml": recipe(), "d.jsonl": b'{"instruction": "Add 1 and 1.", "answer": "2"}\n'},
        ["r.yaml"],
        "d.jsonl:1: missing field 'output' required by format 'alpaca'",
    ),
    "missing-mapped-column": (
        P,
        {"r.yaml": recipe("d.csv", extra="      columns: {output: answer}\n"), "d.csv": b"instruction,output\na,1\n"},
        ["r.yaml"],
        "d.csv:2: missing field 'answer' (mapped from 'output')",
    ),
    "unknown-role": (
        P,
        {"r.yaml": recipe(fmt="messages"), "d.jsonl": chats([ANSWERED[0], {"role": "bot", "content": "x"}])},
        ["r.yaml"],
        "d.jsonl:1: message 1: unknown role 'bot'",
    ),
    "no-assistant-turn": (
        P,
        {"r.yaml": recipe(fmt="messages"), "d.jsonl": chats([ANSWERED[0]])},
        ["r.yaml"],
        "d.jsonl:1: conversation has no assistant message to train on",
    ),
    "every-chat-ends-with-the-user": (
        P,
        {"r.yaml": recipe(fmt="messages"), "d.jsonl": chats([*ANSWERED, ANSWERED[0]], [*ANSWERED, ANSWERED[0]])},
        ["r.yaml"],
        "d.jsonl: all 2 records end with a turn that is not the assistant's",
    ),
    "every-sample-too-long": (
        P,
        {"r.yaml": recipe(), "d.jsonl": JSONL},
        ["r.yaml", "data.max_length=8"],
        "data.train: all 1 samples are longer than data.max_length=8 tokens",
    ),
    "record-over-the-size-cap": (  # the cap is lowered to 1 MiB here; tests/data has the 100 MB case
        P,
        {"r.yaml": recipe(), "d.jsonl": JSONL + b'{"instruction": "' + b"x" * 2**21 + b'", "output": "1"}\n'},
        ["r.yaml"],
        "d.jsonl:2: record is 2.0 MiB (2,097,187 bytes) on one line, over the limit of 1.0 MiB per record",
    ),
}


@pytest.fixture()
def run_main(monkeypatch, tmp_path, genai_main):
    """`genai ARGS` in this process, in tmp_path, with the record cap lowered to 1 MiB."""
    from genai.data import sources

    monkeypatch.setattr(sources, "MAX_RECORD_BYTES", 2**20)
    monkeypatch.chdir(tmp_path)
    return genai_main


@pytest.mark.parametrize("verb,files,args,expected", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_clear_error(run_main, tmp_path, verb, files, args, expected, request):
    if verb == P:
        request.getfixturevalue("tiny_model_path")  # built once per session, before the timed part
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    if verb == P:
        args = [*args, f"data.cache_dir={tmp_path / 'cache'}"]
    code, out, err = run_main(verb, *args)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    assert expected.replace("{tmp}", str(tmp_path)) in err, err
    assert out == ""  # nothing printed as if it had worked
    assert not list((tmp_path / "cache").glob("*/*"))  # and nothing cached


def test_console_script_too(tmp_path):
    # The real `genai` process: the same error, exit code 2 and no traceback.
    (tmp_path / "r.yaml").write_text(recipe())
    (tmp_path / "d.jsonl").write_bytes('{"instruction": "café", "output": "1"}\n'.encode("latin-1"))
    proc = genai_cli("preprocess", tmp_path / "r.yaml", f"data.cache_dir={tmp_path / 'cache'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    where = tmp_path / "d.jsonl"
    assert f"error: {where}:1: not UTF-8 text: byte 0xe9 is not UTF-8 (byte offset 20, column 21)" in proc.stderr
