"""Step ids: a step's parameters as the JSON its ``step.json`` holds and its id hashes, and back.

Every field of a parameter class is written under its own name, except where ids computed
before a change must stay valid. That legacy encoding lives here and nowhere else:

* fields added after ids existed are left out while they hold the value that reproduces the
  old behaviour (:data:`LEFT_OUT`);
* a learner's self-training options are written flat, as ``pseudo_share``, ``pseudo_agree``
  and, for a fine-tune, ``pseudo_epochs`` (and not at all when it does not self-train);
* an inter-training's objective is written as ``setting``, its options flat beside it.

``tests/golden/plan-ids.json`` pins the ids of the shipped specs: a change here that moves
one fails it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from jobs.contract.errors import JobError
from jobs.contract.params import (
    ClassicParams,
    ClusterParams,
    FinetuneParams,
    FitParams,
    InterTrainingOptions,
    IntertrainParams,
    Params,
    SampleParams,
    SelfTraining,
)
from jobs.contract.typed import build

P = TypeVar("P", bound=Params)

CONTRACT_VERSION = 1
"""Part of every id. Bump when a job's outputs change meaning, so old results are not reused."""


def _no_glove(p: Any) -> bool:
    return bool(p.method == "sib" or p.embedding != "glove" or p.glove is None)


LEFT_OUT: dict[tuple[type, str], Callable[[Any], bool]] = {
    (InterTrainingOptions, "seeds"): lambda p: True,  # the plan's, never a step's
    (ClusterParams, "embedding"): lambda p: p.method == "sib",
    (ClusterParams, "glove"): _no_glove,
    (ClusterParams, "glove_sha256"): lambda p: _no_glove(p) or p.glove_sha256 is None,
    (SampleParams, "sampling"): lambda p: p.sampling == "random",
    (ClassicParams, "C"): lambda p: p.C == 1.0,
    (ClassicParams, "max_features"): lambda p: p.max_features == 10000,
    (FitParams, "head"): lambda p: p.head == "finetune",
}
"""(class, field) -> when a field of that class (or a subclass) is left out of the encoding."""

PSEUDO = ("pseudo_share", "pseudo_agree", "pseudo_epochs")
"""The flat names of a learner's self-training options."""


def _left_out(params: Params, name: str) -> bool:
    return any(name == field and isinstance(params, cls) and when(params) for (cls, field), when in LEFT_OUT.items())


def _pseudo(params: SelfTraining) -> dict[str, Any]:
    st = params.self_training
    if st is None:
        return {}
    epochs = {"pseudo_epochs": st.epochs} if isinstance(params, FinetuneParams) else {}
    return {"pseudo_share": st.share, "pseudo_agree": st.agree, **epochs}


def encode(params: Params) -> dict[str, Any]:
    """What ``step.json`` holds and the step id hashes."""
    if isinstance(params, IntertrainParams):
        return {"setting": params.objective, "model": params.model, "seed": params.seed, **encode(params.options)}
    out = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
           if f.name != "self_training" and not _left_out(params, f.name)}
    if isinstance(params, SelfTraining):
        out.update(_pseudo(params))
    return out


def _check(params: P | None, problems: list[str], cls: type) -> P:
    if params is not None:
        problems += [f"params.{p}" for p in params.problems()]
    if problems or params is None:
        raise JobError("; ".join(problems) or f"invalid {getattr(cls, 'kind', cls.__name__)} parameters")
    return params


def _unflatten_pseudo(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    flat = {k: raw.pop(k) for k in PSEUDO if k in raw}
    if not issubclass(cls, SelfTraining) or not flat:
        raw.update(flat)  # named as unknown keys by the build
        return raw
    if "pseudo_epochs" in flat and not issubclass(cls, FinetuneParams):
        raw["pseudo_epochs"] = flat.pop("pseudo_epochs")
    names = {"pseudo_share": "share", "pseudo_agree": "agree", "pseudo_epochs": "epochs"}
    raw["self_training"] = {names[k]: v for k, v in flat.items()}
    return raw


def decode(cls: type[P], raw: Mapping[str, Any]) -> P:
    """Parameters of ``cls`` exactly as ``step.json`` wrote them (a JobError naming every problem)."""
    if issubclass(cls, IntertrainParams):
        return _decode_intertrain(raw)  # type: ignore[return-value]
    problems: list[str] = []
    params = build(cls, _unflatten_pseudo(cls, dict(raw)), "params", problems, exact=True, derived=True)
    return _check(params, problems, cls)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _IntertrainHead:
    model: str
    seed: int = 0


def _decode_intertrain(raw: Mapping[str, Any]) -> IntertrainParams:
    from jobs.contract.intertrainings import objective

    rest = dict(raw)
    setting = rest.pop("setting", None)
    options = decode(objective(str(setting)).options, {k: v for k, v in rest.items() if k not in ("model", "seed")})
    problems: list[str] = []
    head = build(_IntertrainHead, {k: rest[k] for k in ("model", "seed") if k in rest}, "params", problems, exact=True)
    if problems or head is None:
        raise JobError("; ".join(problems) or "invalid intertrain parameters")
    return IntertrainParams(objective=str(setting), model=head.model, seed=head.seed, options=options)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def step_id(kind: str, params: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Hash of everything a step's result depends on: its kind, its encoded parameters, its inputs."""
    payload = canonical_json({"v": CONTRACT_VERSION, "kind": kind, "params": params, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

