"""The controller's own NMI/AMI and paired t-test against scikit-learn and SciPy."""

import math
import random

import pytest

from controller.analysis.agreement import ami, nmi
from controller.analysis.stats import paired_t_pvalue

pytestmark = pytest.mark.unit


def labelings(seed: int) -> tuple[list, list]:
    rng = random.Random(seed)
    n = rng.choice([2, 5, 17, 64, 300])
    k, c = rng.randint(1, 6), rng.randint(1, 50)
    truth = [f"label{rng.randrange(k)}" for _ in range(n)]
    noise = rng.random()
    pred = [hash(t) % c if rng.random() > noise else rng.randrange(c) for t in truth]
    return truth, pred


@pytest.mark.parametrize("seed", range(40))
def test_nmi_and_ami_equal_scikit_learns(seed):
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    truth, pred = labelings(seed)
    assert nmi(truth, pred) == pytest.approx(normalized_mutual_info_score(truth, pred), abs=1e-10)
    assert ami(truth, pred) == pytest.approx(adjusted_mutual_info_score(truth, pred), abs=1e-9)


@pytest.mark.parametrize("truth, pred, expected", [
    ([], [], 1.0), ([1, 1, 1], [0, 0, 0], 1.0), ([1, 2, 1, 2], [0, 0, 0, 0], 0.0),
    (["a", "b", "a", "b"], [3, 4, 3, 4], 1.0)])
def test_limit_cases(truth, pred, expected):
    assert ami(truth, pred) == pytest.approx(expected)
    assert nmi(truth, pred) == pytest.approx(expected)


def test_labelings_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        nmi([1, 2], [1])


@pytest.mark.parametrize("seed", range(30))
def test_paired_t_pvalue_equals_scipys(seed):
    from scipy.stats import ttest_rel

    rng = random.Random(seed)
    n = rng.choice([2, 3, 5, 8, 40])
    x = [rng.gauss(50, 10) for _ in range(n)]
    shift = rng.choice([0.0, 0.5, 3.0, 30.0])
    y = [v + shift + rng.gauss(0, 5) for v in x]
    assert paired_t_pvalue(x, y) == pytest.approx(float(ttest_rel(x, y).pvalue), rel=1e-9, abs=1e-300)


def test_paired_t_pvalue_when_every_difference_is_the_same():
    assert paired_t_pvalue([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert paired_t_pvalue([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == 0.0
    assert math.isnan(paired_t_pvalue([1.0], [2.0]))
