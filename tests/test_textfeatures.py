"""Text features follow the reference code: stop list, punctuation, Snowball stems, raw counts."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.lib.textfeatures import StemmedBagOfWords, normalize, stem_texts, stop_words, top_terms

pytestmark = pytest.mark.unit


def test_stop_words_are_the_reference_list():
    words = stop_words()
    assert len(words) == 147
    assert {"the", "and", "they're", "ll"} <= set(words)
    assert "not" not in words  # the reference list keeps negations


def test_normalize_drops_stop_words_then_punctuation():
    assert normalize("The Cats, and THE dogs!") == "cats dogs"
    # stop words go before punctuation does: "they're" is removed whole
    assert normalize("They're running-fast") == "running fast"


def test_snowball_stems():
    assert stem_texts(["Running runners ran easily", "Generously generous"]) == [
        "run runner ran easili", "generous generous"]


def test_bag_of_words_keeps_most_frequent_stems_as_raw_counts():
    texts = ["apple apple banana", "apples cherry", "banana date", "apple"]
    bow = StemmedBagOfWords(max_features=2)
    counts = bow.fit_transform(texts)
    assert list(bow.vocabulary_) == ["appl", "banana"]
    assert counts.toarray().tolist() == [[2, 1], [1, 0], [0, 1], [1, 0]]


def test_top_terms_per_cluster():
    bow = StemmedBagOfWords()
    counts = bow.fit_transform(["goal match team", "goal team win", "stock market price", "market price bank"])
    terms = top_terms(counts, np.array([0, 0, 1, 1]), bow.vocabulary_, n=2)
    assert set(terms[0]) <= {"goal", "team", "match", "win"} and set(terms[1]) <= {"market", "price", "stock", "bank"}


def test_single_character_tokens_are_dropped():
    bow = StemmedBagOfWords()
    bow.fit_transform(["x yy zz"])
    assert list(bow.vocabulary_) == ["yy", "zz"]


def test_counting_worded_texts_at_a_glance_agrees_with_normalizing_each():
    import json

    from conftest import shared_data

    from jobs.contract.texts import _TERM, _surely_worded, count_worded, normalize

    texts = ["he'd", "he'd ll", "the_x", "a_b", "_", "I'M", "let's go", "x", "é é", "the the", "he's_x", "d'", "'s",
             "1 2", "it's", "ÉTÉ", "i've i'd", "don't"]
    for name in ("ag_news", "isear", "sms_spam", "20newsgroups"):
        lines = (shared_data() / name / "train.jsonl").read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines[::20]]
    slow = [bool(_TERM.search(normalize(t))) for t in texts]
    # the quick look only ever says yes where normalizing says yes, and the count is the same
    assert all(s for t, s in zip(texts, slow) if _surely_worded(t.lower()))
    assert count_worded(texts) == sum(slow)
    assert sum(slow) < len(texts)  # some texts have no term: the slow path is exercised
