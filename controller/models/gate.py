"""The promotion gate: a new version replaces the current one only if it is no worse on the
same dev set, within a tolerance. Pure functions of the two models' predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_TOLERANCE = 1.0
"""Points of accuracy and of macro-F1 a new version may lose and still be promoted. Retraining
alone moves a model by about that much: the default recipe's two cluster inter-trainings on
the same AG News samples scored 84.3 and 82.6 (cluster-spread samples), 83.7 and 83.4 (random ones)
(docs/results.md, the sampling table); its means in the recipe table carry an SEM of 0.4-1.8.
A loss within 1 point is let through as that noise; a larger one (mislabeled texts, a broken
corpus) is refused. Set ``--tolerance`` to the spread of your own dev set."""


@dataclass(frozen=True)
class DevScores:
    accuracy: float
    """Percent."""
    macro_f1: float
    """Percent: the unweighted mean of each label's F1, over the labels in the gold set or the predictions."""
    n: int

    def line(self) -> str:
        return f"accuracy {self.accuracy:.1f}, macro-F1 {self.macro_f1:.1f} on {self.n} dev texts"


@dataclass(frozen=True)
class Decision:
    promote: bool
    why: str
    new: DevScores
    current: DevScores | None
    current_version: str | None
    tolerance: float

    def to_dict(self) -> dict:
        return {"promote": self.promote, "why": self.why, "new": asdict(self.new),
                "current": asdict(self.current) if self.current else None,
                "current_version": self.current_version, "tolerance": self.tolerance}


def score(gold: Sequence[str], predicted: Sequence[str]) -> DevScores:
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"{len(gold)} gold labels against {len(predicted)} predictions")
    correct = sum(g == p for g, p in zip(gold, predicted))
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return DevScores(100.0 * correct / len(gold), 100.0 * sum(f1s) / len(f1s), len(gold))


def decide(new: DevScores, current: DevScores | None, current_version: str | None, tolerance: float) -> Decision:
    """Promote when there is no current version, or when neither accuracy nor macro-F1 fell by
    more than ``tolerance`` points against it on the same dev set."""
    if current is None:
        return Decision(True, "no current version", new, None, None, tolerance)
    drops = {"accuracy": current.accuracy - new.accuracy, "macro-F1": current.macro_f1 - new.macro_f1}
    worse = [f"{name} {-drop:+.1f}" for name, drop in drops.items() if drop > tolerance]
    if worse:
        return Decision(False, f"worse than {current_version} by more than {tolerance:g} points: "
                        + ", ".join(worse), new, current, current_version, tolerance)
    change = ", ".join(f"{name} {-drop:+.1f}" for name, drop in drops.items())
    return Decision(True, f"no worse than {current_version} within {tolerance:g} points ({change})", new, current,
                    current_version, tolerance)
