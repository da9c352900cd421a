"""A training round's corpus, read as a stream and bounded.

The corpus (a local .jsonl/.csv file, an ``s3://`` object, or every .jsonl/.csv under an
``s3://`` prefix, in key order) is read one line at a time: a local file from disk, an object
from its bytes, one object in memory at a time. What is kept is at most ``limit`` texts
(every text with ``limit`` 0) and one 8-byte digest per text (the round's corpus index, kept
with the version so that the next round can tell which texts are new). A corpus text that is
also a labeled text is indexed, not kept: the round has it, labeled.

Which texts a bounded round clusters and inter-trains on (the labeled texts are always in,
ahead of them):

* ``sample`` (the default): the ``limit`` texts of smallest seeded digest, a uniform sample
  that keeps its texts as the corpus grows (a text in this round's sample stays in the next
  one's unless smaller digests push it out), so new texts enter in proportion to their number;
* ``newest``: the last ``limit`` texts in reading order (objects are read in key order: name
  them by date and the newest come last).
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from array import array
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.plan.datasets import source_objects
from controller.plan.settings import CORPUS_PICKS, DEFAULT_CORPUS_LIMIT
from jobs.contract.texts import text_digest
from jobs.data import FORMATS, DataError, _text
from jobs.storage import Store


@dataclass(frozen=True)
class CorpusBound:
    limit: int = DEFAULT_CORPUS_LIMIT
    """0: every text."""
    pick: str = "sample"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise DataError(f"--corpus-limit must be 0 (every text) or more, got {self.limit}")
        if self.pick not in CORPUS_PICKS:
            raise DataError(f"--corpus-pick: unknown {self.pick!r} (known: {', '.join(CORPUS_PICKS)})")


@dataclass(frozen=True)
class BoundedCorpus:
    texts: tuple[str, ...]
    """What the round clusters and inter-trains on besides the labeled texts, in reading order."""
    index: np.ndarray
    """The digest (``jobs.contract.texts.text_digest``) of every corpus text read, kept or not."""
    labeled: int = 0
    """Texts read that are labeled texts too (indexed, not kept)."""

    @property
    def total(self) -> int:
        return len(self.index)


def _rows(raw: Iterable[str], source: str, suffix: str, text_field: str) -> Iterator[str]:
    if suffix == ".csv":
        reader = csv.DictReader(raw)
        if reader.fieldnames is None:
            raise DataError(f"{source}: file is empty")
        if text_field not in reader.fieldnames:
            raise DataError(f"{source}:1: missing field {text_field!r} in the CSV header")
        for row in reader:
            yield _text(row, text_field, source, reader.line_num)
        return
    for lineno, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.removeprefix("\ufeff") if lineno == 1 else line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{lineno}: malformed JSON line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{source}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield _text(row, text_field, source, lineno)


def _local_texts(path: Path, text_field: str) -> Iterator[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in FORMATS:
        raise DataError(f"{path}: not a {' or '.join(FORMATS)} file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            yield from _rows(f, str(path), path.suffix, text_field)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None


def object_texts(store: Store, root: str, key: str, text_field: str) -> Iterator[str]:
    """The texts of one .jsonl/.csv object (or .txt: one text per line) of a store."""
    # the object's bytes, decoded a line at a time (a str of it would take up to 4 bytes a character)
    lines = io.TextIOWrapper(io.BytesIO(store.read_bytes(key)), encoding="utf-8-sig", newline="")
    try:
        if key.endswith(".txt"):
            yield from (line.rstrip("\r\n") for line in lines if line.strip())
        else:
            yield from _rows(lines, f"{root}/{key}", Path(key).suffix, text_field)
    except UnicodeDecodeError as exc:
        raise DataError(f"{root}/{key}: not UTF-8 text ({exc.reason})") from None


def _s3_texts(src: str, text_field: str) -> Iterator[str]:
    store, root, keys = source_objects(src)
    for k in keys:  # one object in memory at a time
        yield from object_texts(store, root, k, text_field)


def corpus_texts(src: str, text_field: str) -> Iterator[str]:
    """Every text of a corpus source, in reading order, one file or object at a time."""
    return _s3_texts(src, text_field) if src.startswith("s3://") else _local_texts(Path(src).expanduser(), text_field)


def _sample_key(text: str, seed: int) -> int:
    return text_digest(f"{seed}\0{text}")


def bounded_corpus(texts: Iterable[str], bound: CorpusBound, source: str = "corpus",
                   labeled: Collection[int] = ()) -> BoundedCorpus:
    """Read ``texts`` once: keep at most ``bound.limit`` of them (all when 0) and every text's
    digest. A text whose digest is in ``labeled`` (a labeled text the corpus holds too: it is in
    the round already, labeled) is indexed, not kept. Memory: the texts kept and 8 bytes a text read."""
    index = array("Q")
    also = 0
    kept_all: list[str] = []
    newest: deque[tuple[int, str]] = deque(maxlen=bound.limit or None)
    smallest: list[tuple[int, int, str]] = []  # a max-heap by key, as (-key, -position, text)
    for i, text in enumerate(texts):
        digest = text_digest(text)
        index.append(digest)
        if digest in labeled:
            also += 1
            continue
        if not bound.limit:
            kept_all.append(text)
        elif bound.pick == "newest":
            newest.append((i, text))
        else:
            key = _sample_key(text, bound.seed)
            if len(smallest) < bound.limit:
                heapq.heappush(smallest, (-key, -i, text))
            elif -smallest[0][0] > key:
                heapq.heapreplace(smallest, (-key, -i, text))
    if not index:
        raise DataError(f"{source}: no texts")
    digests = np.frombuffer(index, dtype=np.uint64).copy()
    if not bound.limit:
        return BoundedCorpus(tuple(kept_all), digests, also)
    if bound.pick == "newest":
        return BoundedCorpus(tuple(t for _, t in newest), digests, also)
    return BoundedCorpus(tuple(t for _, _, t in sorted(smallest, key=lambda e: -e[1])), digests, also)


def index_bytes(index: np.ndarray) -> bytes:
    """A corpus index as a version keeps it: ``.npy``, unsigned 64-bit digests."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(index, dtype=np.uint64), allow_pickle=False)
    return buf.getvalue()
