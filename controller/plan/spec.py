"""The experiment spec: YAML in, a validated frozen :class:`ExperimentSpec` out.

Every problem is reported on its own line (``SpecError.problems``), naming the key. The
sections are the steps' own parameter classes (``jobs.contract.params``): one definition
of every field, its default and its checks, for the spec and the job alike.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.plan.settings import all_settings
from controller.plan.yamlload import YamlProblem, load_yaml
from jobs.contract.errors import BadInput
from jobs.contract.intertrainings import sections
from jobs.contract.params import (
    SAMPLINGS,
    AnalysisOptions,
    ClusterParams,
    Optimization,
    SelfTrainOptions,
    SetFitOptions,
    StrongOptimization,
)
from jobs.contract.typed import DERIVED, build, convert

PROTOCOLS = ("paper", "strong")

BACKEND_SECTIONS: dict[str, type] = {}
"""Each backend's section of the spec, by its top-level key (``kubernetes``). A backend
registers its own (``register_backend_section``) when ``controller.run`` is imported, which
``controller`` itself does: the spec names no backend."""


def register_backend_section(key: str, cls: type) -> None:
    """``cls``: a frozen dataclass whose fields are the section's keys, with ``problems()``."""
    BACKEND_SECTIONS[key] = cls


class SpecError(BadInput):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: ``<data_dir>/<name>/{train,test}.{jsonl,csv}`` unless paths are given
    (local files, ``s3://`` objects, or ``s3://`` prefixes whose .jsonl/.csv are read in order)."""

    name: str
    train: str | None = None
    test: str | None = None
    text_field: str = "text"
    label_field: str = "label"
    max_train: int | None = None
    """Keep a seeded random subset of this many train texts (the paper trims to 15K)."""
    max_test: int | None = None
    """Evaluate on a seeded random subset of this many test texts."""
    corpus: str | None = None
    """Extra unlabeled texts (a file, or an ``s3://`` object or prefix) for clustering and
    inter-training, beside the train texts. New texts there re-run only what reads them."""
    group: str | None = None
    """Which average of the report's Table 2 the dataset joins (``topical``, ``non-topical``
    or any name); the shipped datasets have the paper's, others ``other``."""

    @staticmethod
    def from_shorthand(value: Any) -> Any:
        """A bare name stands for ``{name: ...}``."""
        return {"name": value} if isinstance(value, str) else value


@dataclass(frozen=True, kw_only=True)
class AnalysisSection(AnalysisOptions):
    """Per inter-trained encoder: NED before/after with a permutation test, and a t-SNE picture."""

    enabled: bool = False


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    datasets: tuple[DatasetSpec, ...]
    model: str = "minilm"
    """``minilm`` (packaged, offline), a local folder, a Hugging Face id, or an ``s3://`` folder."""
    settings: tuple[str, ...] = ("bert", "clust")
    budgets: tuple[int, ...] = (64,)
    repetitions: int = 5
    seed: int = 0
    """Seeds the label samples and the fine-tuning runs."""
    clustering: ClusterParams = field(default_factory=ClusterParams)
    finetune: Optimization = field(default_factory=Optimization)
    """The ``paper`` protocol."""
    strong: StrongOptimization = field(default_factory=StrongOptimization)
    """The ``strong`` protocol."""
    setfit: SetFitOptions = field(default_factory=SetFitOptions)
    """The ``setfit`` and ``clust+setfit`` settings."""
    selftrain: SelfTrainOptions = field(default_factory=SelfTrainOptions)
    """The ``self`` and ``clust+self`` settings (their fine-tunes follow the protocols)."""
    sampling: tuple[str, ...] = ("random",)
    """How labeled samples are drawn: ``random`` (the paper's), ``cluster`` (spread over the
    clusters by size, as ``ctune suggest`` proposes), or both to compare them."""
    protocols: tuple[str, ...] = ("paper",)
    """Fine-tuning protocols to run: ``paper`` (the ``finetune`` section), ``strong``."""
    analysis: AnalysisSection = field(default_factory=AnalysisSection)
    data_dir: str | None = None
    store: str | None = None
    sections: Mapping[str, Optimization] = field(default_factory=dict, metadata={DERIVED: True})
    """The options of each inter-training objective, by section (the top-level keys
    ``intertrain``, ``mlm``, ...: see ``jobs.contract.intertrainings``)."""
    backends: Mapping[str, Any] = field(default_factory=dict, metadata={DERIVED: True})
    """Each backend's section as the spec gave it (see ``BACKEND_SECTIONS``)."""

    def section(self, name: str) -> Optimization:
        found = self.sections.get(name)
        return found if found is not None else sections()[name]()

    def backend(self, key: str) -> Any:
        """A backend's section: as the spec gave it, else its defaults."""
        found = self.backends.get(key)
        return found if found is not None else BACKEND_SECTIONS[key]()

    def protocol(self, name: str) -> Optimization:
        """The fine-tuning options of a protocol."""
        return self.finetune if name == "paper" else self.strong


_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
"""Names that become store keys, folder names and Kubernetes label values."""


def _listed(key: str, values: tuple, known: tuple[str, ...] | dict, what: str) -> list[str]:
    """Each value known, each once, at least one."""
    out = [f"{key}: unknown {what} {v!r} (known: {', '.join(known)})" for v in values if v not in known]
    if not values or len(set(values)) != len(values):
        out.append(f"{key}: list each {what} once, at least one")
    return out


def _check_datasets(spec: ExperimentSpec) -> list[str]:
    out = [] if spec.datasets else ["datasets: at least one dataset is needed"]
    names = [d.name for d in spec.datasets]
    out += [f"datasets[{i}].name: {n!r} must be lower case letters, digits, '.', '_' or '-' (at most 63): "
            "it names folders and store keys" for i, n in enumerate(names) if not _NAME.match(n) or ".." in n]
    out += [f"datasets: {dup!r} is listed twice" for dup in sorted({n for n in names if names.count(n) > 1})]
    for i, d in enumerate(spec.datasets):
        out += [f"datasets[{i}].{key}: must be positive, got {getattr(d, key)}"
                for key in ("max_train", "max_test") if getattr(d, key) is not None and getattr(d, key) < 1]
    return out


def _check_grid(spec: ExperimentSpec) -> list[str]:
    out = [] if _NAME.match(spec.name) else [
        f"name: {spec.name!r} must be lower case letters, digits, '.', '_' or '-' (at most 63)"]
    out += _listed("settings", spec.settings, all_settings(), "setting")
    out += [f"budgets: {b} is not a positive number of labels" for b in spec.budgets if b < 1]
    out += [f"budgets: {b} is listed twice (each sample would count twice)"
            for b in sorted({b for b in spec.budgets if spec.budgets.count(b) > 1})]
    if not spec.budgets:
        out.append("budgets: at least one budget is needed")
    if spec.repetitions < 1:
        out.append(f"repetitions: must be at least 1, got {spec.repetitions}")
    out += _listed("protocols", spec.protocols, PROTOCOLS, "protocol")
    return out + _listed("sampling", spec.sampling, SAMPLINGS, "sampling")


def _check_sections(spec: ExperimentSpec) -> list[str]:
    parts: dict[str, Any] = {"clustering": spec.clustering, "finetune": spec.finetune, "strong": spec.strong,
                             "setfit": spec.setfit, "selftrain": spec.selftrain, "analysis": spec.analysis,
                             **{key: spec.backend(key) for key in BACKEND_SECTIONS}, **spec.sections}
    out = [f"{name}.{p}" for name, part in parts.items() for p in part.problems()]
    c = spec.clustering
    if c.method != "sib" and c.embedding == "glove" and c.glove and not Path(c.glove).expanduser().is_file():
        out.append(f"clustering.glove: no such file {c.glove}")
    return out


def max_lengths(spec: ExperimentSpec) -> dict[str, int]:
    """``section.max_length`` of every section that tokenizes, for checks against the model."""
    parts = {"finetune": spec.finetune, "strong": spec.strong, "setfit": spec.setfit, **{n: spec.section(n) for n in sections()}}
    return {f"{n}.max_length": v for n, part in parts.items() if isinstance(v := getattr(part, "max_length", None), int)}


def needs_clustering(spec: ExperimentSpec) -> bool:
    """Whether a dataset of ``spec`` must be clustered: by a setting (itself or upstream of
    its encoder) or by cluster sampling. The plan, and the check before staging, ask this."""
    known = all_settings()
    return "cluster" in spec.sampling or any(known[s].needs_clusters for s in spec.settings if s in known)


def grid_cells(spec: ExperimentSpec) -> int:
    """How many fine-tuning cells the grid holds (an upper bound, before any step is built)."""
    return (len(spec.datasets) * len(spec.settings) * len(spec.protocols) * len(spec.sampling)
            * len(spec.budgets) * spec.repetitions)


def parse_spec(raw: Any, source: str = "spec") -> ExperimentSpec:
    """Validate a parsed YAML document (structure and values, not the data)."""
    if not isinstance(raw, dict):
        raise SpecError(source, [f"expected a mapping at the top level, got {type(raw).__name__}"])
    problems: list[str] = []
    known_sections = sections()
    rest = {k: v for k, v in raw.items() if k not in known_sections and k not in BACKEND_SECTIONS}
    spec = build(ExperimentSpec, rest, "", problems, also_known=(*BACKEND_SECTIONS, *known_sections))
    parsed = {name: convert(raw.get(name, {}), cls, name, problems) for name, cls in known_sections.items()}
    backends = {key: convert(raw[key], cls, key, problems) for key, cls in BACKEND_SECTIONS.items() if key in raw}
    if spec is not None and not problems:
        spec = dataclasses.replace(spec, sections=parsed, backends=backends)
        problems += _check_datasets(spec) + _check_grid(spec) + _check_sections(spec)
    if problems or spec is None:
        raise SpecError(source, problems or ["invalid spec"])
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), ["no such spec file"])
    try:
        raw = load_yaml(path)
    except YamlProblem as exc:
        raise SpecError(str(path), [str(exc)]) from None
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse_spec(raw, str(path))


def spec_to_dict(spec: ExperimentSpec) -> dict:
    """The spec as YAML would give it (sections as top-level keys), with only the values that
    differ from their defaults, in value or in type (a spec built in code may hold ``10.0``
    where the default is ``10``: a step id hashes them apart, and the loader reads either,
    spelled out, as the default)."""
    out = _explicit(spec)
    out.pop("sections", None)
    out.pop("backends", None)
    for key in BACKEND_SECTIONS:
        found = _explicit(spec.backend(key))
        if found:
            out[key] = found
    for name in sections():
        found = _explicit(spec.section(name))
        if found:
            out[name] = found
    return out


def _explicit(obj: Any) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get(DERIVED):
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            out[f.name] = _plain(value)
            continue
        if dataclasses.is_dataclass(value):
            nested = _explicit(value)
            if nested:
                out[f.name] = nested
        elif type(value) is not type(default) or value != default:
            out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """A value YAML's safe dumper writes: dataclasses (their explicit fields), lists, dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _explicit(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def store_uri(spec_store: str | None, override: str | None) -> str:
    """The store a command uses: ``--store``, else the spec's ``store:``, else ``$CTUNE_STORE``, else ``./store``."""
    return override or spec_store or os.environ.get("CTUNE_STORE") or "store"
