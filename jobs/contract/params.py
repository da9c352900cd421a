"""The parameters of every step kind: one frozen dataclass each, documented field by field.

The same classes serve the spec's sections (``clustering:``, ``finetune:``, ...), the plan
that writes ``step.json``, the job that reads it, and ``ctune train``. A step's id hashes
:meth:`Params.to_params`; a field added after ids existed is left out of that dict while it
has the value that reproduces the old behaviour (``omit_when``), so old ids stay valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from jobs.contract.errors import JobError
from jobs.contract.typed import DERIVED, build

P = TypeVar("P", bound="Params")

CLUSTERING_METHODS = ("sib", "kmeans", "hartigan")
EMBEDDINGS = ("encoder", "glove")
SAMPLINGS = ("random", "cluster")
POOLINGS = ("cls", "mean")
CLASSIC_METHODS = ("probe", "nb", "svm", "clusters")
FIT_HEADS = ("finetune", "probe", "concat")


def omit_when(predicate: Callable[[Any], bool], **metadata: Any) -> dict:
    """Field metadata: leave the field out of the hashed parameters when ``predicate(params)``."""
    return {"omit": predicate, **metadata}


def _known(key: str, value: Any, known: tuple[str, ...], what: str) -> list[str]:
    return [] if value in known else [f"{key}: unknown {what} {value!r} (known: {', '.join(known)})"]


def _at_least(key: str, value: float, low: float) -> list[str]:
    return [] if value >= low else [f"{key}: must be at least {low:g}, got {value}"]


def _rate(key: str, value: float) -> list[str]:
    return [] if 0 < value < 1 else [f"{key}: must be in (0, 1), got {value}"]


def _tokens(value: int) -> list[str]:
    return [] if 8 <= value <= 4096 else [f"max_length: must be between 8 and 4096, got {value}"]


@dataclass(frozen=True, kw_only=True)
class Params:
    """Base of every parameter class: hashing, decoding and value checks."""

    kind: ClassVar[str] = ""

    def to_params(self) -> dict[str, Any]:
        """What ``step.json`` holds and the step id hashes."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            omit = f.metadata.get("omit")
            if omit is None or not omit(self):
                out[f.name] = getattr(self, f.name)
        return out

    def problems(self) -> list[str]:
        """Values out of range, as ``"<field>: <message>"`` lines."""
        return []

    @classmethod
    def from_params(cls: type[P], raw: Mapping[str, Any]) -> P:
        """Decode a step's parameters exactly as written (JobError naming every problem)."""
        problems: list[str] = []
        params = build(cls, dict(raw), "params", problems, exact=True, derived=True)
        if params is not None:
            problems += [f"params.{p}" for p in params.problems()]
        if problems or params is None:
            raise JobError("; ".join(problems) or f"invalid {cls.kind} parameters")
        return params


@dataclass(frozen=True, kw_only=True)
class Optimization(Params):
    """Adam with a constant learning rate; the last epoch is kept (the reference code's)."""

    epochs: float = 10
    """Passes over the training texts; a fractional last pass is allowed. The paper: 10."""
    lr: float = 3e-5
    """Adam's learning rate, constant (no warm-up, no decay), as the reference code."""
    batch_size: int = 64
    """Texts per optimizer step. The paper: 64 (so about 10 steps at 64 labels)."""
    max_length: int = 128
    """Tokens per text; longer texts are cut. Must not exceed the model's positions."""

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.epochs > 0:
            out.append(f"epochs: must be positive, got {self.epochs}")
        out += _rate("lr", self.lr) + _at_least("batch_size", self.batch_size, 1)
        return out + _tokens(self.max_length)


def _always(p: Any) -> bool:
    return True


@dataclass(frozen=True, kw_only=True)
class InterTrainingOptions(Optimization):
    """The options of an inter-training objective (a spec section)."""

    seeds: int = field(default=1, metadata=omit_when(_always))
    """How many times to inter-train (seeds ``seed``, ``seed + 1``, ...); every cell that starts
    from the encoder runs on each copy, so the report's spread includes the inter-training's.
    The plan's, not a step's: never part of a step's parameters."""

    def problems(self) -> list[str]:
        return super().problems() + _at_least("seeds", self.seeds, 1)


@dataclass(frozen=True, kw_only=True)
class IntertrainOptimization(InterTrainingOptions):
    """Inter-training on cluster ids: one epoch in the paper."""

    epochs: float = 1


@dataclass(frozen=True, kw_only=True)
class MlmOptimization(InterTrainingOptions):
    """Masked-LM inter-training: the paper's 30 epochs, each text masked 5 different ways."""

    epochs: float = 30
    replication: int = 5
    """Static masks per text (BERT's ``dupe_factor``); epoch e uses mask e mod replication."""
    mask_prob: float = 0.15
    """Share of tokens predicted (of those: 80% [MASK], 10% a random token, 10% kept)."""

    def problems(self) -> list[str]:
        return super().problems() + _at_least("replication", self.replication, 1) + _rate("mask_prob", self.mask_prob)


@dataclass(frozen=True, kw_only=True)
class StrongOptimization(Optimization):
    """The ``strong`` fine-tuning preset: enough optimizer steps at small budgets.

    The paper's protocol (batch 64, 10 epochs) gives about 10 optimizer steps at 64 labels,
    which leaves the plain fine-tune far below what the encoder can do."""

    lr: float = 5e-5
    batch_size: int = 16


def _sib(p: Any) -> bool:
    return bool(p.method == "sib")


def _no_glove(p: Any) -> bool:
    return _sib(p) or p.embedding != "glove" or p.glove is None


@dataclass(frozen=True, kw_only=True)
class ClusterParams(Params):
    """The ``cluster`` step (and the spec's ``clustering:``); defaults are the reference code's."""

    kind: ClassVar[str] = "cluster"
    method: str = "sib"
    """``sib`` over the stemmed bag-of-words (the paper's), or ``kmeans`` / ``hartigan`` over
    dense vectors."""
    n_clusters: int = 50
    n_init: int = 10
    """Restarts; the best by the algorithm's own score is kept."""
    max_iter: int = 15
    """Iterations per restart, at most."""
    tol: float = 0.02
    """sIB's convergence threshold: share of texts that changed cluster in an iteration."""
    max_features: int = 10000
    """Vocabulary: the most frequent stems."""
    seed: int = 1024
    embedding: str = field(default="encoder", metadata=omit_when(_sib))
    """Dense vectors for kmeans/hartigan: ``encoder`` (mean-pooled embeddings of the base
    model) or ``glove`` (averaged word vectors from the ``glove`` file). Unused by sIB."""
    glove: str | None = field(default=None, metadata=omit_when(_no_glove))
    """A GloVe-format text file (a word, then its numbers, per line)."""
    glove_sha256: str | None = field(default=None, metadata=omit_when(
        lambda p: _no_glove(p) or p.glove_sha256 is None, **{DERIVED: True}))
    """The GloVe file's digest, filled by the plan: new vectors, new clustering."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("method", self.method, CLUSTERING_METHODS, "method")
        out += _known("embedding", self.embedding, EMBEDDINGS, "embedding")
        if not _sib(self) and self.embedding == "glove" and not self.glove:
            out.append("glove: a GloVe file is needed for embedding: glove")
        for key in ("n_clusters", "n_init", "max_iter", "max_features"):
            out += _at_least(key, getattr(self, key), 1)
        if self.n_clusters == 1:
            out.append(f"n_clusters: must be at least 2, got {self.n_clusters}")
        return out


def clustering_problem(n_texts: int, n_clusters: int) -> str | None:
    """Why ``n_texts`` cannot be put in ``n_clusters`` clusters (None when they can); the
    controller asks before anything runs, the cluster job again on what it reads."""
    if n_texts < n_clusters:
        return f"{n_texts} texts to cluster, fewer than n_clusters={n_clusters}"
    return None


@dataclass(frozen=True, kw_only=True)
class SampleParams(Params):
    """Which labeled texts a cell learns from: the same for every setting of a (budget, repetition)."""

    budget: int
    """Labeled texts."""
    repetition: int
    """Which of the budget's samples (0, 1, ...)."""
    sample_seed: int = 0
    """Seeds every sample of the experiment (the spec's ``seed``)."""
    sampling: str = field(default="random", metadata=omit_when(lambda p: p.sampling == "random"))
    """``random`` (the paper's, not stratified) or ``cluster`` (spread over the clusters by size)."""

    def problems(self) -> list[str]:
        out = super().problems() + _at_least("budget", self.budget, 1)
        out += _at_least("repetition", self.repetition, 0)
        return out + _known("sampling", self.sampling, SAMPLINGS, "sampling")


PSEUDO_AGREEMENTS = ("cluster", "none")
DEFAULT_AGREEMENT = {"finetune": "cluster", "probe": "none"}
"""Unless the spec says: a fine-tune keeps cluster-agreeing pseudo-labels (``self``,
``clust+self``, as first measured); a probe keeps them by confidence alone, which held out
over the shipped datasets lost less than the cluster filter (README, *The default recipe*)."""


def _no_self_training(p: Any) -> bool:
    return bool(p.pseudo_share == 0)


@dataclass(frozen=True, kw_only=True)
class SelfTrainOptions(Params):
    """Self-training on the unlabeled train texts (the ``self`` and ``clust+self`` settings):
    fine-tune on the labeled sample (the protocol's options), label every other train text
    with that model, keep of each predicted class its most confident ``share`` (only texts
    whose sIB cluster's majority prediction is their own, with ``agree: cluster``), then
    fine-tune the starting encoder again on the labeled and the kept texts. A self-training
    probe (``clust+concat+self``) does the same with its logistic regression (no ``epochs``)."""

    share: float = 0.3
    """Of the texts predicted as a class, the most confident share kept."""
    agree: str | None = None
    """``cluster``: keep a text only if most texts of its cluster got the same prediction;
    ``none``: confidence alone; unset: the learner's own default (:data:`DEFAULT_AGREEMENT`)."""
    epochs: float = 2.0
    """Passes of the second fine-tune over the labeled and kept texts."""

    def pseudo_fields(self, probe: bool) -> dict[str, Any]:
        """A cell's ``pseudo_*`` parameters for these options (the inverse of
        :attr:`PseudoLabeling.self_training`), with the agreement filter a probe or a fine-tune
        uses when unset; ``epochs`` only for a fine-tune."""
        agree = self.agree or DEFAULT_AGREEMENT["probe" if probe else "finetune"]
        return {"pseudo_share": self.share, "pseudo_agree": agree, **({} if probe else {"pseudo_epochs": self.epochs})}

    def problems(self) -> list[str]:
        out = super().problems()
        if not 0 < self.share <= 1:
            out.append(f"share: must be in (0, 1], got {self.share}")
        if self.agree is not None:
            out += _known("agree", self.agree, PSEUDO_AGREEMENTS, "agreement filter")
        if not self.epochs > 0:
            out.append(f"epochs: must be positive, got {self.epochs}")
        return out


@dataclass(frozen=True, kw_only=True)
class PseudoLabeling(Params):
    """The self-training fields of a cell (see :class:`SelfTrainOptions`); share 0: none."""

    pseudo_share: float = field(default=0.0, metadata=omit_when(_no_self_training))
    pseudo_agree: str = field(default="cluster", metadata=omit_when(_no_self_training))

    @property
    def self_training(self) -> SelfTrainOptions | None:
        if _no_self_training(self):
            return None
        return SelfTrainOptions(share=self.pseudo_share, agree=self.pseudo_agree)

    def problems(self) -> list[str]:
        st = self.self_training
        return super().problems() + ([f"pseudo_{p}" for p in st.problems()] if st else [])


@dataclass(frozen=True, kw_only=True)
class FinetuneParams(Optimization, SampleParams, PseudoLabeling):
    """The ``finetune`` step: fine-tune an encoder on a labeled sample, evaluate on the test set."""

    kind: ClassVar[str] = "finetune"
    model: str
    """The base model (a packaged name, a folder, a hub id, an ``s3://`` folder)."""
    seed: int = 0
    """Seeds the head and the batches, plus the repetition."""
    pseudo_epochs: float = field(default=2.0, metadata=omit_when(_no_self_training))
    """Passes of the second fine-tune, when self-training."""

    @property
    def self_training(self) -> SelfTrainOptions | None:
        options = super().self_training
        return None if options is None else dataclasses.replace(options, epochs=self.pseudo_epochs)


@dataclass(frozen=True, kw_only=True)
class ClassicParams(SampleParams, PseudoLabeling):
    """The ``classic`` step: a cell that trains no network (a probe may self-train)."""

    kind: ClassVar[str] = "classic"
    method: str
    """``probe`` (logistic regression on embeddings), ``nb``, ``svm`` (bag-of-words) or
    ``clusters`` (the cluster-only classifier)."""
    C: float = field(default=1.0, metadata=omit_when(lambda p: p.C == 1.0))
    """Inverse regularization of the probe and the SVM."""
    max_features: int = field(default=10000, metadata=omit_when(lambda p: p.max_features == 10000))
    """Vocabulary of the bag-of-words methods."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("method", self.method, CLASSIC_METHODS, "classic method")
        if self.self_training is not None and self.method != "probe":
            out.append(f"pseudo_share: only a probe self-trains, not {self.method!r}")
        return out


SETFIT_SAMPLINGS = ("oversampling", "undersampling", "unique")


@dataclass(frozen=True, kw_only=True)
class SetFitOptions(Params):
    """SetFit (Tunstall et al., 2022) through the ``setfit`` package: contrastive fine-tuning of
    the sentence encoder on pairs of the labeled texts, then a logistic regression head on
    its embeddings. Defaults are the package's few-shot defaults, but for ``max_length``."""

    batch_size: int = 16
    """Pairs per optimizer step of the body."""
    epochs: int = 1
    """Passes over the pairs."""
    num_iterations: int | None = None
    """Pairs drawn per labeled text (the SetFit paper's 20); None: every pair, the rarer kind
    (same / other label) repeated to balance (``sampling_strategy``)."""
    sampling_strategy: str = "oversampling"
    body_lr: float = 2e-5
    """Learning rate of the body (linear warm-up over 10%, then decay: the package's)."""
    max_length: int = 128
    """Tokens per text, as every other setting (the package would take the model's maximum)."""

    def problems(self) -> list[str]:
        out = super().problems() + _at_least("batch_size", self.batch_size, 2) + _at_least("epochs", self.epochs, 1)
        if self.num_iterations is not None:
            out += _at_least("num_iterations", self.num_iterations, 1)
        out += _known("sampling_strategy", self.sampling_strategy, SETFIT_SAMPLINGS, "sampling strategy")
        return out + _rate("body_lr", self.body_lr) + _tokens(self.max_length)


@dataclass(frozen=True, kw_only=True)
class SetFitParams(SetFitOptions, SampleParams):
    """The ``setfit`` step: SetFit on a labeled sample, evaluated on the test set."""

    kind: ClassVar[str] = "setfit"
    model: str
    """The base model; the body is the ``encoder`` input when there is one."""
    seed: int = 0
    """Seeds the pairs, the body's training and the head, plus the repetition."""


@dataclass(frozen=True, kw_only=True)
class EmbedParams(Params):
    """The ``embed`` step: frozen mean-pooled embeddings of every text, for probes and k-means."""

    kind: ClassVar[str] = "embed"
    model: str
    max_length: int = 128


@dataclass(frozen=True, kw_only=True)
class FitParams(Optimization, PseudoLabeling):
    """The ``fit`` step (``ctune train``): learn from every labeled text and keep the model; a
    probe head may self-train on the corpus (``clust+concat+self``)."""

    kind: ClassVar[str] = "fit"
    model: str
    seed: int = 0
    head: str = field(default="finetune", metadata=omit_when(lambda p: p.head == "finetune"))
    """``finetune``: fine-tune the encoder with a classification head (the protocol's options);
    ``probe``: keep the encoder frozen and fit a logistic regression on its mean-pooled
    embeddings (the ``probe`` cells' classifier; the optimization options are unused);
    ``concat``: the same on the encoder's and the pretrained model's embeddings side by side
    (the ``clust+concat`` cells' classifier)."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("head", self.head, FIT_HEADS, "head")
        if self.self_training is not None and self.head == "finetune":
            out.append("pseudo_share: only a probe head self-trains")
        return out


@dataclass(frozen=True, kw_only=True)
class AnalysisOptions(Params):
    """How inter-training moved the embeddings (paper section 5.3)."""

    max_texts: int = 1000
    """A fixed random subset of the test texts."""
    permutations: int = 1000
    """Label shuffles of the permutation test (p >= 1 / (permutations + 1))."""
    pooling: str = "cls"
    """``cls`` (the paper's [CLS] embeddings) or ``mean``."""
    tsne: bool = True
    """Also draw both embeddings with t-SNE."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("pooling", self.pooling, POOLINGS, "pooling")
        return out + _at_least("max_texts", self.max_texts, 10) + _at_least("permutations", self.permutations, 1)


@dataclass(frozen=True, kw_only=True)
class AnalyzeParams(AnalysisOptions):
    """The ``analyze`` step: NED before/after one inter-training, a permutation test, t-SNE."""

    kind: ClassVar[str] = "analyze"
    model: str
    """The base encoder (before)."""
    inter_training: str
    """Which inter-training made the encoder input (after)."""
    seed: int = 0
    max_length: int = 128


@dataclass(frozen=True, kw_only=True)
class IntertrainParams(Params):
    """The ``intertrain`` step: train an encoder on an objective over the corpus, keep the encoder.

    Its options (an :class:`Optimization` subclass per objective, see
    ``jobs.contract.intertrainings``) are flattened into the parameters."""

    kind: ClassVar[str] = "intertrain"
    objective: str
    """What the encoder learns to predict: ``clust`` (cluster ids), ``mlm`` (masked tokens).
    Written as ``setting`` in ``step.json``."""
    model: str
    seed: int = 0
    options: Optimization = field(default_factory=IntertrainOptimization)

    def to_params(self) -> dict[str, Any]:
        return {"setting": self.objective, "model": self.model, "seed": self.seed, **self.options.to_params()}

    def problems(self) -> list[str]:
        return [f"options.{p}" for p in self.options.problems()]

    @classmethod
    def from_params(cls, raw: Mapping[str, Any]) -> IntertrainParams:
        from jobs.contract.intertrainings import objective

        raw = dict(raw)
        setting = raw.pop("setting", None)
        options = objective(str(setting)).options
        own = {k: raw.pop(k) for k in ("model", "seed") if k in raw}
        decoded = options.from_params(raw)
        problems: list[str] = []
        head = build(_IntertrainHead, own, "params", problems, exact=True)
        if problems:
            raise JobError("; ".join(problems))
        return cls(objective=str(setting), model=head.model, seed=head.seed, options=decoded)


@dataclass(frozen=True, kw_only=True)
class _IntertrainHead:
    model: str
    seed: int = 0


