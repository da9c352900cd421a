"""The default recipe chosen leave-one-dataset-out (controller.analysis.recipe_loo), on hand-made cells."""

from __future__ import annotations

import pytest

from controller.analysis.recipe_loo import (
    candidates,
    choose,
    dataset_means,
    format_recipe_choice,
    leave_one_dataset_out,
    shortfalls,
)

pytestmark = pytest.mark.unit


def rows(table: dict[str, dict[str, list[float]]], budget: int = 64, sampling: str = "random") -> list[dict]:
    """One per-sample row per accuracy (points) given."""
    return [{"dataset": d, "column": c, "budget": budget, "sampling": sampling, "repetition": i, "accuracy": v / 100}
            for d, cols in table.items() for c, values in cols.items() for i, v in enumerate(values)]


# a: "x" best; b: "x" best; c: "y" best and "x" 6 points below; d: "x" 0.5 below "z"
TABLE = {"a": {"x": [80, 82], "y": [70, 70], "z": [79, 79]},
         "b": {"x": [60, 60], "y": [55, 57], "z": [58, 58]},
         "c": {"x": [30, 30], "y": [36, 36], "z": [33, 33]},
         "d": {"x": [90, 90], "y": [80, 80], "z": [90.5, 90.5]}}


def test_means_count_random_samples_of_the_budget_only():
    extra = rows({"a": {"x": [0.0]}}, budget=256) + rows({"a": {"x": [0.0]}}, sampling="cluster")
    means = dataset_means(rows(TABLE) + extra, 64)
    assert means["a"]["x"] == pytest.approx(81.0) and means["b"]["y"] == pytest.approx(56.0)
    assert shortfalls(means)["c"] == pytest.approx({"x": 6.0, "y": 0.0, "z": 3.0})


def test_the_choice_minimizes_the_worst_shortfall_then_the_mean():
    short = shortfalls(dataset_means(rows(TABLE), 64))
    # worst shortfalls: x 6 (on c), y 11 (on a), z 3 (on c): z, though x is best on two datasets
    assert choose(short, ["x", "y", "z"]) == ("z", pytest.approx(3.0))
    # without c, x's worst is 0.5 and z's 2: x
    assert choose({d: s for d, s in short.items() if d != "c"}, ["x", "y", "z"]) == ("x", pytest.approx(0.5))
    # equal worst: the smaller mean wins
    assert choose({"p": {"u": 1.0, "v": 1.0}, "q": {"u": 1.0, "v": 0.0}}, ["u", "v"])[0] == "v"


def test_held_out_the_recipe_is_judged_on_the_dataset_it_was_not_chosen_on():
    out = {r.dataset: r for r in leave_one_dataset_out(dataset_means(rows(TABLE), 64))}
    assert out["c"].chosen == "x" and out["c"].shortfall == pytest.approx(6.0) and out["c"].best == "y"
    assert out["c"].fitted_worst == pytest.approx(0.5)
    assert out["a"].chosen == "z" and out["a"].shortfall == pytest.approx(2.0)
    text = "\n".join(format_recipe_choice(rows(TABLE), [64]))
    assert "| c | x | 0.5 | y | 6.0 |" in text
    assert "within 1 point of the best on 1 of 4 datasets" in text and "Chosen on all 4: **z**" in text


def test_only_settings_measured_everywhere_compete_and_too_few_datasets_give_nothing():
    table = {d: dict(cols) for d, cols in TABLE.items()}
    table["a"]["w"] = [99.0, 99.0]  # measured on one dataset only
    means = dataset_means(rows(table), 64)
    assert candidates(means) == ["x", "y", "z"]
    text = "\n".join(format_recipe_choice(rows(table), [64]))
    assert "not candidates: w" in text and "| a | z |" in text  # a's best is w; z is 20 below it
    two = {d: TABLE[d] for d in ("a", "b")}
    assert leave_one_dataset_out(dataset_means(rows(two), 64)) == []
    assert format_recipe_choice(rows(TABLE), [256]) == []
