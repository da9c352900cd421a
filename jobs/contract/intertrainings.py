"""The registry of inter-trainings: what an encoder can learn between pre-training and fine-tuning.

An **objective** is what the encoder learns to predict; the job module
``jobs/objectives/<name>.py`` implements it, and its options are a spec section (a
top-level key of the spec, an :class:`Optimization` subclass). An **inter-training** is a
named encoder: an objective applied to an upstream encoder (``base``, the pretrained model,
or another inter-training). Each inter-training is also a fine-tune setting of the same
name, and the plan builds its encoder (and its upstream ones, and the clustering when the
objective needs it) only when a setting starts from it.

Adding one: an :class:`InterTraining` line below (and, for a new objective, an
:class:`Objective` line with its options class), the objective's job module, a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.contract.errors import JobError
from jobs.contract.params import IntertrainOptimization, MlmOptimization, Optimization

BASE = "base"
"""The pretrained encoder, no inter-training."""


@dataclass(frozen=True)
class Objective:
    name: str
    """Also the job module: ``jobs.objectives.<name>``."""
    section: str
    """The spec's top-level key holding its options."""
    options: type[Optimization]
    needs_clusters: bool
    """Whether the step reads the dataset's clustering (its ``clusters`` input)."""


@dataclass(frozen=True)
class InterTraining:
    name: str
    """The encoder's name, and the fine-tune setting that starts from it."""
    objective: str
    upstream: str
    """The encoder it starts from: ``base`` or another inter-training."""
    about: str

    @property
    def needs_clusters(self) -> bool:
        return objective(self.objective).needs_clusters


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("mlm", "mlm", MlmOptimization, needs_clusters=False),
    Objective("clust", "intertrain", IntertrainOptimization, needs_clusters=True),
)}

INTER_TRAININGS: dict[str, InterTraining] = {i.name: i for i in (
    InterTraining("mlm", "mlm", BASE, "masked-LM inter-training on the unlabeled texts, then fine-tune"),
    InterTraining("clust", "clust", BASE, "inter-train on cluster ids, then fine-tune"),
    InterTraining("mlm+clust", "clust", "mlm", "masked-LM, then cluster inter-training, then fine-tune"),
)}
"""In the order encoders are planned (upstream ones first)."""


def objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise JobError(f"unknown inter-training objective {name!r} (known: {', '.join(OBJECTIVES)})") from None


def sections() -> dict[str, type[Optimization]]:
    """The spec sections the objectives read: name -> options class."""
    return {o.section: o.options for o in OBJECTIVES.values()}


def chain(name: str) -> list[InterTraining]:
    """The inter-training ``name`` and every one upstream of it, nearest first."""
    out: list[InterTraining] = []
    while name != BASE:
        entry = INTER_TRAININGS[name]
        out.append(entry)
        name = entry.upstream
    return out
