"""A step kind added from outside the package, the way a new kind is added: a parameter class,
a descriptor (``jobs.contract.kinds.StepKind``), a setting that makes cells of it, and its job
(``run``), all here. ``CTUNE_PLUGINS=tests.toy_kind`` makes ``ctune`` and every job process
import this module; the kind then runs through ``ctune run`` like any other.

The toy: a cell that predicts its labeled sample's most common label for every test text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from jobs.contract import outputs
from jobs.contract.inputs import CLUSTERS, DATASET, ENCODER, Roles
from jobs.contract.kinds import StepKind, register
from jobs.contract.params import SampleParams


@dataclass(frozen=True, kw_only=True)
class MajorityParams(SampleParams):
    kind: ClassVar[str] = "majority"
    model: str
    seed: int = 0


KIND = StepKind("majority", MajorityParams, Roles((DATASET,), (ENCODER, CLUSTERS)), outputs.CELL, cell=True,
                module=__name__)
register(KIND)


def register_setting() -> None:
    from controller.plan.settings import Setting
    from controller.plan.settings import register as register_setting_

    register_setting_(Setting("majority", None, "majority", "the labeled sample's most common label, always"))


register_setting()


def run(ctx) -> dict:
    from jobs.lib.cells import load_cell_data, write_cell

    data = load_cell_data(ctx)
    label = Counter(data.sample_labels).most_common(1)[0][0]
    metrics = write_cell(ctx, data, [label] * len(data.test_labels), {"majority": data.names[label]})
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
