"""Stemmed bag-of-words exactly as the Cluster & Tune reference code builds it.

lower case -> remove the reference stop list (whole words) -> punctuation to spaces ->
whitespace tokens -> Snowball (English) stems -> raw counts of the most frequent stems
(scikit-learn's default token pattern: tokens of two or more word characters).
The reference tokenizes with NLTK's ``word_tokenize``; after punctuation is replaced by
spaces that gives the same tokens as a whitespace split, without NLTK data downloads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import snowballstemmer
from sklearn.feature_extraction.text import CountVectorizer

from jobs.contract.texts import normalize, stop_words

__all__ = ["StemmedBagOfWords", "normalize", "stem_texts", "stop_words", "top_terms"]


class _Stemmer:
    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        stem = self._cache.get(word)
        if stem is None:
            stem = self._stemmer.stemWord(word).lower().strip()
            self._cache[word] = stem
        return stem


def stem_texts(texts: Sequence[str]) -> list[str]:
    stem = _Stemmer()
    return [" ".join(stem(w) for w in normalize(t).split()) for t in texts]


class StemmedBagOfWords:
    """Raw term counts over the ``max_features`` most frequent stems (sklearn-style)."""

    def __init__(self, max_features: int = 10000):
        self.max_features = max_features

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        self.vectorizer_ = CountVectorizer(max_features=self.max_features, lowercase=True)
        try:
            counts = self.vectorizer_.fit_transform(stem_texts(texts))
        except ValueError as exc:  # "empty vocabulary"
            raise ValueError(f"no terms left after stop-word removal and stemming ({exc})") from None
        self.vocabulary_ = self.vectorizer_.get_feature_names_out()
        return counts.astype(np.float64).tocsr()

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.vectorizer_.transform(stem_texts(texts)).astype(np.float64).tocsr()


def top_terms(counts: sp.csr_matrix, labels: np.ndarray, vocabulary: Sequence[str], n: int = 10) -> dict[int, list[str]]:
    """Per cluster, the stems most over-represented relative to the whole corpus."""
    total = np.asarray(counts.sum(axis=0)).ravel()
    overall = total / max(total.sum(), 1.0)
    result: dict[int, list[str]] = {}
    for cluster in np.unique(labels):
        rows = counts[labels == cluster]
        c = np.asarray(rows.sum(axis=0)).ravel()
        if c.sum() == 0:
            result[int(cluster)] = []
            continue
        p = c / c.sum()
        score = p * np.log((p + 1e-12) / (overall + 1e-12))
        best = np.argsort(-score)[:n]
        result[int(cluster)] = [str(vocabulary[i]) for i in best if c[i] > 0]
    return result
