"""The experiment spec: YAML in, a validated frozen :class:`ExperimentSpec` out.

Every problem is reported on its own line (``SpecError.problems``), naming the key.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.settings import SETTINGS

CLUSTERING_METHODS = ("sib", "kmeans", "hartigan")
EMBEDDINGS = ("encoder", "glove")
PROTOCOLS = ("paper", "strong")
SAMPLINGS = ("random", "cluster")
POOLINGS = ("cls", "mean")


class SpecError(ValueError):
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


@dataclass(frozen=True)
class ClusteringSpec:
    """sIB over stemmed bag-of-words; defaults are the reference code's."""

    method: str = "sib"
    """``sib`` over the bag-of-words, or ``kmeans`` / ``hartigan`` over dense vectors."""
    n_clusters: int = 50
    n_init: int = 10
    max_iter: int = 15
    tol: float = 0.02
    max_features: int = 10000
    seed: int = 1024
    embedding: str = "encoder"
    """Dense vectors for kmeans/hartigan: ``encoder`` (mean-pooled embeddings of the base
    model) or ``glove`` (averaged word vectors from the ``glove`` file)."""
    glove: str | None = None
    """A GloVe-format text file (a word, then its numbers, per line)."""


@dataclass(frozen=True)
class TrainSpec:
    """Adam with a constant learning rate; the last epoch is kept."""

    epochs: float = 10
    lr: float = 3e-5
    batch_size: int = 64
    max_length: int = 128


@dataclass(frozen=True)
class IntertrainSpec(TrainSpec):
    """Inter-training on cluster ids: one epoch in the paper."""

    epochs: float = 1


@dataclass(frozen=True)
class MlmSpec(TrainSpec):
    """Masked-LM inter-training: the paper's 30 epochs, each text masked 5 different ways."""

    epochs: float = 30
    replication: int = 5
    mask_prob: float = 0.15


@dataclass(frozen=True)
class StrongSpec(TrainSpec):
    """The ``strong`` fine-tuning preset: enough optimizer steps at small budgets.

    The paper's protocol (batch 64, 10 epochs) gives about 10 optimizer steps at 64 labels,
    which leaves the plain fine-tune far below what the encoder can do."""

    lr: float = 5e-5
    batch_size: int = 16


@dataclass(frozen=True)
class AnalysisSpec:
    """How inter-training moved the embeddings (paper section 5.3), per inter-trained encoder:
    NED before/after with a permutation test, and a t-SNE picture."""

    enabled: bool = False
    max_texts: int = 1000
    """A fixed random subset of the test texts."""
    permutations: int = 1000
    pooling: str = "cls"
    """``cls`` (the paper's [CLS] embeddings) or ``mean``."""
    tsne: bool = True


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None


@dataclass(frozen=True)
class KubernetesSpec:
    """How steps run as ``batch/v1`` Jobs (``--backend kubernetes``)."""

    namespace: str = "cluster-tune"
    image: str = "cluster-tune-job:latest"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "cluster-tune-job"
    gpu_kinds: tuple[str, ...] = ("intertrain", "finetune", "embed", "fit", "analyze")
    """Step kinds that get ``gpus``; the others (cluster, classic) run on CPU."""
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "2"
    memory: str = "16Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    """For GPU steps."""
    tolerations: tuple[Toleration, ...] = ()
    """For GPU steps."""
    priority_class: str | None = None
    queue: str | None = None
    """A Kueue LocalQueue: Jobs get its label and are created suspended for Kueue to admit."""
    s3_secret: str = "cluster-tune-s3"
    """Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, optionally,
    AWS_ENDPOINT_URL and AWS_DEFAULT_REGION."""
    backoff_limit: int = 2
    active_deadline_s: int = 6 * 3600
    ttl_after_finished_s: int = 24 * 3600
    max_in_flight: int = 20
    pack: int = 1
    """Fine-tune cells per Job: cells sharing a starting model run in one pod, one after another."""


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    datasets: tuple[DatasetSpec, ...]
    model: str = "minilm"
    """``minilm`` (packaged, offline), a local folder, or a Hugging Face id."""
    settings: tuple[str, ...] = ("bert", "clust")
    budgets: tuple[int, ...] = (64,)
    repetitions: int = 5
    seed: int = 0
    """Seeds the label samples and the fine-tuning runs."""
    clustering: ClusteringSpec = field(default_factory=ClusteringSpec)
    intertrain: IntertrainSpec = field(default_factory=IntertrainSpec)
    mlm: MlmSpec = field(default_factory=MlmSpec)
    finetune: TrainSpec = field(default_factory=TrainSpec)
    """The ``paper`` protocol."""
    strong: StrongSpec = field(default_factory=StrongSpec)
    """The ``strong`` protocol."""
    sampling: tuple[str, ...] = ("random",)
    """How labeled samples are drawn: ``random`` (the paper's), ``cluster`` (spread over the
    clusters by size, as ``ctune suggest`` proposes), or both to compare them."""
    protocols: tuple[str, ...] = ("paper",)
    """Fine-tuning protocols to run: ``paper`` (the ``finetune`` section), ``strong``."""
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)
    data_dir: str | None = None
    store: str | None = None


_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


def _type_name(tp: Any) -> str:
    if tp is float:
        return "number"
    if tp is int:
        return "integer"
    if tp is str:
        return "string"
    if tp is bool:
        return "boolean"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against the annotation ``tp``; returns the converted value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where, problems)
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return None
        inner = typing.get_args(tp)[1]
        return {str(k): _coerce(v, inner, f"{where}.{k}", problems) for k, v in value.items()}
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, inner, f"{where}[{i}]", problems) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if tp is DatasetSpec and isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return None
        return _build(tp, value, where, problems)
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        problems.append(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return None
    return float(value) if tp is float else value


def _build(cls: type, raw: dict, where: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            problems.append(f"{where + '.' if where else ''}{key}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in raw:
            values[name] = _coerce(raw[name], hints[name], path, problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path}: required key is missing")
    if any(v is None and fields[k].default is not None for k, v in values.items()):
        return None
    try:
        return cls(**values)
    except TypeError:
        return None


def _check(spec: ExperimentSpec, problems: list[str]) -> None:
    if not _NAME.match(spec.name):
        problems.append(f"name: {spec.name!r} must be lower case letters, digits, '.', '_' or '-' (at most 63)")
    if not spec.datasets:
        problems.append("datasets: at least one dataset is needed")
    names = [d.name for d in spec.datasets]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"datasets: {dup!r} is listed twice")
    for i, d in enumerate(spec.datasets):
        for key in ("max_train", "max_test"):
            value = getattr(d, key)
            if value is not None and value < 1:
                problems.append(f"datasets[{i}].{key}: must be positive, got {value}")
    for s in spec.settings:
        if s not in SETTINGS:
            problems.append(f"settings: unknown setting {s!r} (known: {', '.join(SETTINGS)})")
    if not spec.settings:
        problems.append("settings: at least one setting is needed")
    if len(set(spec.settings)) != len(spec.settings):
        problems.append("settings: a setting is listed twice")
    for b in spec.budgets:
        if b < 1:
            problems.append(f"budgets: {b} is not a positive number of labels")
    if not spec.budgets:
        problems.append("budgets: at least one budget is needed")
    if spec.repetitions < 1:
        problems.append(f"repetitions: must be at least 1, got {spec.repetitions}")
    c = spec.clustering
    if c.method not in CLUSTERING_METHODS:
        problems.append(f"clustering.method: unknown method {c.method!r} (known: {', '.join(CLUSTERING_METHODS)})")
    if c.embedding not in EMBEDDINGS:
        problems.append(f"clustering.embedding: unknown embedding {c.embedding!r} (known: {', '.join(EMBEDDINGS)})")
    if c.method != "sib" and c.embedding == "glove":
        if not c.glove:
            problems.append("clustering.glove: a GloVe file is needed for embedding: glove")
        elif not Path(c.glove).expanduser().is_file():
            problems.append(f"clustering.glove: no such file {c.glove}")
    for key in ("n_clusters", "n_init", "max_iter", "max_features"):
        if getattr(c, key) < 1:
            problems.append(f"clustering.{key}: must be at least 1, got {getattr(c, key)}")
    if c.n_clusters < 2:
        problems.append(f"clustering.n_clusters: must be at least 2, got {c.n_clusters}")
    for p in spec.protocols:
        if p not in PROTOCOLS:
            problems.append(f"protocols: unknown protocol {p!r} (known: {', '.join(PROTOCOLS)})")
    if not spec.protocols or len(set(spec.protocols)) != len(spec.protocols):
        problems.append("protocols: list each protocol once, at least one")
    for sampling in spec.sampling:
        if sampling not in SAMPLINGS:
            problems.append(f"sampling: unknown sampling {sampling!r} (known: {', '.join(SAMPLINGS)})")
    if not spec.sampling or len(set(spec.sampling)) != len(spec.sampling):
        problems.append("sampling: list each sampling once, at least one")
    _check_kubernetes(spec.kubernetes, problems)
    a = spec.analysis
    if a.pooling not in POOLINGS:
        problems.append(f"analysis.pooling: unknown pooling {a.pooling!r} (known: {', '.join(POOLINGS)})")
    if a.max_texts < 10:
        problems.append(f"analysis.max_texts: must be at least 10, got {a.max_texts}")
    if a.permutations < 1:
        problems.append(f"analysis.permutations: must be at least 1, got {a.permutations}")
    if spec.mlm.replication < 1:
        problems.append(f"mlm.replication: must be at least 1, got {spec.mlm.replication}")
    if not 0 < spec.mlm.mask_prob < 1:
        problems.append(f"mlm.mask_prob: must be in (0, 1), got {spec.mlm.mask_prob}")
    for part in ("intertrain", "mlm", "finetune", "strong"):
        t: TrainSpec = getattr(spec, part)
        if t.epochs <= 0:
            problems.append(f"{part}.epochs: must be positive, got {t.epochs}")
        if not 0 < t.lr < 1:
            problems.append(f"{part}.lr: must be in (0, 1), got {t.lr}")
        if t.batch_size < 1:
            problems.append(f"{part}.batch_size: must be at least 1, got {t.batch_size}")
        if not 8 <= t.max_length <= 4096:
            problems.append(f"{part}.max_length: must be between 8 and 4096, got {t.max_length}")


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
STEP_KINDS = ("cluster", "intertrain", "finetune", "embed", "classic", "fit", "analyze")


def _check_kubernetes(k: KubernetesSpec, problems: list[str]) -> None:
    for key in ("namespace", "service_account"):
        if not _DNS_LABEL.match(getattr(k, key)):
            problems.append(f"kubernetes.{key}: {getattr(k, key)!r} is not a valid Kubernetes name")
    if not k.image.strip():
        problems.append("kubernetes.image: must not be empty")
    if k.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
        problems.append(f"kubernetes.image_pull_policy: {k.image_pull_policy!r} (known: Always, IfNotPresent, Never)")
    for kind in k.gpu_kinds:
        if kind not in STEP_KINDS:
            problems.append(f"kubernetes.gpu_kinds: unknown step kind {kind!r} (known: {', '.join(STEP_KINDS)})")
    for key in ("cpu", "memory"):
        if not _QUANTITY.match(getattr(k, key)):
            problems.append(f"kubernetes.{key}: {getattr(k, key)!r} is not a Kubernetes quantity")
    for key in ("gpus", "backoff_limit"):
        if getattr(k, key) < 0:
            problems.append(f"kubernetes.{key}: must not be negative, got {getattr(k, key)}")
    for key in ("active_deadline_s", "ttl_after_finished_s", "max_in_flight", "pack"):
        if getattr(k, key) < 1:
            problems.append(f"kubernetes.{key}: must be at least 1, got {getattr(k, key)}")
    for i, t in enumerate(k.tolerations):
        if t.operator not in ("Exists", "Equal"):
            problems.append(f"kubernetes.tolerations[{i}].operator: {t.operator!r} (known: Exists, Equal)")


def parse_spec(raw: Any, source: str = "spec") -> ExperimentSpec:
    """Validate a parsed YAML document (structure and values, not the data)."""
    if not isinstance(raw, dict):
        raise SpecError(source, [f"expected a mapping at the top level, got {type(raw).__name__}"])
    problems: list[str] = []
    spec = _build(ExperimentSpec, raw, "", problems)
    if spec is not None and not problems:
        _check(spec, problems)
    if problems or spec is None:
        raise SpecError(source, problems or ["invalid spec"])
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), ["no such spec file"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(str(path), [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    return parse_spec(raw, str(path))


def protocol_args(spec: ExperimentSpec, protocol: str) -> TrainSpec:
    return spec.finetune if protocol == "paper" else spec.strong


def spec_to_dict(spec: ExperimentSpec) -> dict:
    return dataclasses.asdict(spec)
