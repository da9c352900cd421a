"""What a round says (controller.models.round_text): records in, lines out."""

from __future__ import annotations

import pytest

from controller.models.round_text import corpus_line, drift_lines, labels_line, round_lines

pytestmark = pytest.mark.unit

REPORT = {"against": "v1", "compared": True, "texts": 400, "new": 100, "new_share": 0.25, "clusters": 8,
          "alpha": 0.01,
          "emerging": [{"cluster": 3, "texts": 50, "new": 40, "new_share": 0.8, "p": 1e-12,
                        "top_stems": ["comput", "softwar"], "examples": ["A new chip", "Linux ships"]}],
          "labels": {"old_texts": 300, "new_texts": 100, "p": 1e-9, "shifted": True,
                     "moved": [{"label": "Business", "old": 0.3, "new": 0.7}]},
          "dev_coverage": {"new_share_in_thin": 0.2, "thin_clusters": [3], "min_dev": 5},
          "batch": {"texts": 10, "disagree": 4, "emerging": 6, "clusters": 5}}


def test_a_report_names_the_emerging_clusters_the_shift_the_dev_coverage_and_the_batch():
    lines = round_lines({"version": "v2", "registry": "s3://b/m", "drift": REPORT, "corpus_read": 5000,
                         "corpus_kept": 2000, "corpus_limit": 2000, "corpus_pick": "sample", "corpus_also_labeled": 3,
                         "labels_added": ["Sci/Tech"], "labels_dropped": []})
    text = "\n".join(lines)
    assert lines[0] == ("corpus: a uniform sample of 2000 of 5000 texts read (--corpus-limit 2000) clustered and "
                        "inter-trained on; 3 of them labeled texts too, in the round as such")
    assert "labels against the version then current: added Sci/Tech" in text
    assert "100 of 400 clustered texts are new (25.0%)" in text
    assert "cluster 3: 40 of 50 new (80.0%, p = 1e-12); stems: comput, softwar" in text and "'A new chip'" in text
    assert "shifted (chi-square p = 1e-09); moved most: Business 30.0% -> 70.0%" in text
    assert "20.0% of the new texts lie in the 1 cluster(s) where the dev set holds fewer than 5" in text
    assert lines[-1].startswith("to label next: 10 texts (4 where the new and the current versions disagree, 6 from "
                                "emerging topics") and "ctune suggest --registry s3://b/m@v2" in lines[-1]


def test_what_a_round_says_when_there_is_nothing_to_compare_or_no_report():
    assert drift_lines(None) == []
    assert drift_lines({"compared": False, "against": None, "texts": 90}) == [
        "what changed: not compared (no version in use); 90 corpus texts"]
    assert "version v1 keeps no corpus index" in drift_lines({"compared": False, "against": "v1", "texts": 9})[0]
    assert drift_lines({"error": "not computed: the drift step failed"}) == [
        "what changed: not computed: the drift step failed"]
    quiet = drift_lines({**REPORT, "emerging": []})
    assert any(line.startswith("emerging topics: none (no cluster holds more new texts than the 25.0%") for line in quiet)
    assert corpus_line({}) is None and labels_line({"labels_added": [], "labels_dropped": []}) is None
    assert corpus_line({"corpus_read": 60, "corpus_kept": 60, "corpus_limit": 0}).startswith("corpus: all 60 texts")
    assert "the newest 50 of 60" in corpus_line({"corpus_read": 60, "corpus_kept": 50, "corpus_limit": 50,
                                                  "corpus_pick": "newest"})
    assert "dropped World" in labels_line({"labels_added": [], "labels_dropped": ["World"]})
