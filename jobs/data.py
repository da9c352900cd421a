"""Labeled text files (JSONL or CSV) and datasets resolved by name from a data directory.

A dataset named ``NAME`` is the folder ``<data_dir>/NAME`` holding ``train`` and ``test``
files (``.jsonl`` or ``.csv``).  Every problem is raised as :class:`DataError` with a
one-line message naming the file and, where it applies, the line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jobs.contract.errors import BadInput

FORMATS = (".jsonl", ".csv")


class DataError(BadInput):
    """Malformed or missing data; the message names the file and line."""


@dataclass(frozen=True)
class Examples:
    """Texts with their gold labels (``None`` labels for an unlabeled corpus)."""

    texts: tuple[str, ...]
    labels: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labeled(self) -> bool:
        return all(label is not None for label in self.labels)


def default_data_dir() -> Path | None:
    """``CTUNE_DATA_DIR`` if set, else ``../shared/data`` when it exists."""
    env = os.environ.get("CTUNE_DATA_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def find_split(folder: Path, split: str) -> Path | None:
    for ext in FORMATS:
        path = folder / f"{split}{ext}"
        if path.is_file():
            return path
    return None


def _label(value) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def parse_jsonl(raw: str, source: str, text_field: str, label_field: str | None) -> Examples:
    raw = raw.removeprefix("\ufeff")  # a byte-order mark, as spreadsheet exports write
    texts: list[str] = []
    labels: list[str | None] = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{lineno}: malformed JSON line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{source}:{lineno}: expected a JSON object, got {type(row).__name__}")
        texts.append(_text(row, text_field, source, lineno))
        labels.append(_gold(row, label_field, source, lineno))
    return _nonempty(Examples(tuple(texts), tuple(labels)), source)


def parse_csv(raw: str, source: str, text_field: str, label_field: str | None) -> Examples:
    reader = csv.DictReader(io.StringIO(raw.removeprefix("\ufeff")))
    if reader.fieldnames is None:
        raise DataError(f"{source}: file is empty")
    if text_field not in reader.fieldnames:
        raise DataError(f"{source}:1: missing field {text_field!r} in the CSV header")
    if label_field and label_field not in reader.fieldnames:
        raise DataError(f"{source}:1: missing field {label_field!r} in the CSV header")
    texts: list[str] = []
    labels: list[str | None] = []
    for row in reader:
        lineno = reader.line_num
        texts.append(_text(row, text_field, source, lineno))
        labels.append(_gold(row, label_field, source, lineno))
    return _nonempty(Examples(tuple(texts), tuple(labels)), source)


def _text(row: dict, field: str, source: str, lineno: int) -> str:
    if field not in row or row[field] is None:
        raise DataError(f"{source}:{lineno}: missing field {field!r}")
    value = row[field]
    if not isinstance(value, str):
        raise DataError(f"{source}:{lineno}: field {field!r} is not a string")
    return value


def _gold(row: dict, field: str | None, source: str, lineno: int) -> str | None:
    if not field:
        return None
    if field not in row or _label(row[field]) is None:
        raise DataError(f"{source}:{lineno}: missing field {field!r}")
    value = row[field]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{source}:{lineno}: field {field!r} must be a string or a number, "
                        f"got {type(value).__name__} {json.dumps(value)[:40]}")
    return _label(value)


def _nonempty(examples: Examples, source: str) -> Examples:
    if not examples.texts:
        raise DataError(f"{source}: file is empty")
    return examples


def read_examples(path: Path, text_field: str = "text", label_field: str | None = "label") -> Examples:
    """Read a local JSONL or CSV file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in FORMATS:
        raise DataError(f"{path}: not a {' or '.join(FORMATS)} file")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if path.suffix == ".csv":
        return parse_csv(raw, str(path), text_field, label_field)
    return parse_jsonl(raw, str(path), text_field, label_field)


@contextlib.contextmanager
def output_stream(path: str | None) -> Iterator[IO[str]]:
    """A text file to write (created or replaced), or standard output when no path is given."""
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        yield out


def dump_jsonl(examples: Examples) -> bytes:
    lines = (
        json.dumps({"text": t, "label": y}, ensure_ascii=False)
        for t, y in zip(examples.texts, examples.labels)
    )
    return ("\n".join(lines) + "\n").encode("utf-8")


def load_jsonl_bytes(data: bytes, source: str) -> Examples:
    """Read staged JSONL (written by :func:`dump_jsonl`); a null label means unlabeled."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not rows:
        raise DataError(f"{source}: file is empty")
    return Examples(tuple(r["text"] for r in rows), tuple(_label(r.get("label")) for r in rows))


def label_names(labels: Sequence[str | None]) -> list[str]:
    """The label map: every label of the whole train set, sorted."""
    return sorted({label for label in labels if label is not None})
