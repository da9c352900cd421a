"""Text normalization shared by the clustering features (a job) and the controller's check
that a corpus has words to cluster: lower case, the reference stop list removed (whole
words), punctuation to spaces."""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import numpy as np

_PUNCTUATION = str.maketrans(string.punctuation, " " * len(string.punctuation))
_TERM = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern: what the bag of words counts."""


@lru_cache(maxsize=1)
def stop_words() -> tuple[str, ...]:
    text = resources.files("jobs.contract").joinpath("stop_words.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def _stop_pattern() -> re.Pattern:
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in stop_words()) + r")\b")


def normalize(text: str) -> str:
    """Lower case, drop stop words, punctuation to spaces, collapse whitespace."""
    text = re.sub(r" +", " ", _stop_pattern().sub("", str(text).lower())).strip()
    return " ".join(text.translate(_PUNCTUATION).split())


_RUN = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _removable() -> frozenset[str]:
    """Every word-character run a stop word can remove: the stop words and their parts
    (``he'd`` removes the runs ``he`` and ``d``)."""
    runs = set(stop_words())
    for word in stop_words():
        runs.update(_RUN.findall(word))
    return frozenset(runs)


def _surely_worded(lowered: str) -> bool:
    """A run no stop word can remove, with a part of two or more characters once ``_`` (the
    one punctuation mark that is a word character) is a space: a term ``normalize`` keeps."""
    removable = _removable()
    return any(run not in removable and any(len(part) >= 2 for part in run.split("_"))
               for run in _RUN.findall(lowered))


def count_worded(texts: Iterable[str]) -> int:
    """How many texts keep a term (two or more word characters) after normalization. Most texts
    show one at a glance (``_surely_worded``); the rest are normalized (the stop-word pattern
    is slow: it made planning the paper's grid 3 s slower)."""
    return sum(1 for t in texts if _surely_worded(str(t).lower()) or _TERM.search(normalize(t)))


def text_digest(text: str) -> int:
    """A text's 64-bit digest: what a registry version's corpus index keeps, one per corpus
    text, so that the next round can tell which of its texts are new."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def digests(texts: Iterable[str]) -> np.ndarray:
    """Each text's ``text_digest``, as unsigned 64-bit integers."""
    return np.fromiter((text_digest(t) for t in texts), dtype=np.uint64)
