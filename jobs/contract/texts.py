"""Text normalization shared by the clustering features (a job) and the controller's check
that a corpus has words to cluster: lower case, the reference stop list removed (whole
words), punctuation to spaces."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

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


def count_worded(texts: Iterable[str]) -> int:
    """How many texts keep a term (two or more word characters) after normalization."""
    return sum(1 for t in texts if _TERM.search(normalize(t)))
