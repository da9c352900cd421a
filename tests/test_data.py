"""Reading labeled data: JSONL and CSV, configurable fields, and every malformed case."""

from __future__ import annotations

import pytest

from jobs.data import DataError, label_names, read_examples

pytestmark = pytest.mark.unit


def test_jsonl_and_csv_read_the_same(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "hello world", "label": "x"}\n\n{"text": "bye", "label": 3}\n')
    (tmp_path / "a.csv").write_text('text,label\n"hello world",x\nbye,3\n')
    j = read_examples(tmp_path / "a.jsonl")
    c = read_examples(tmp_path / "a.csv")
    assert j == c
    assert j.texts == ("hello world", "bye") and j.labels == ("x", "3")


def test_field_names_are_configurable(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"body": "t1", "y": "a"}\n')
    ex = read_examples(tmp_path / "a.jsonl", text_field="body", label_field="y")
    assert ex.texts == ("t1",) and ex.labels == ("a",)
    unlabeled = read_examples(tmp_path / "a.jsonl", text_field="body", label_field=None)
    assert unlabeled.labels == (None,) and not unlabeled.labeled


@pytest.mark.parametrize("name, content, message", [(f"a.{ext}", c, m) for ext, c, m in [
    ("jsonl", "", r"a\.jsonl: file is empty"),
    ("jsonl", "\n\n", r"a\.jsonl: file is empty"),
    ("jsonl", '{"text": "ok", "label": "a"}\n{"text": "broken", \n', r"a\.jsonl:2: malformed JSON line"),
    ("jsonl", '{"text": "ok", "label": "a"}\n{"label": "b"}\n', r"a\.jsonl:2: missing field 'text'"),
    ("jsonl", '{"text": "ok"}\n', r"a\.jsonl:1: missing field 'label'"),
    ("jsonl", '["text", "label"]\n', r"a\.jsonl:1: expected a JSON object"),
    ("jsonl", '{"text": 5, "label": "a"}\n', r"a\.jsonl:1: field 'text' is not a string"),
    ("csv", "", r"a\.csv: file is empty"),
    ("csv", "text,label\n", r"a\.csv: file is empty"),
    ("csv", "body,label\nx,y\n", r"a\.csv:1: missing field 'text' in the CSV header"),
    ("csv", "text,label\nx,\n", r"a\.csv:2: missing field 'label'"),
]])
def test_bad_data_names_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_examples(tmp_path / "nope.jsonl")


def test_label_map_is_sorted_and_complete():
    assert label_names(["b", "a", "b", None, "c"]) == ["a", "b", "c"]
