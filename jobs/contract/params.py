"""The parameters of every step kind: one frozen dataclass each, documented field by field.

The same classes serve the spec's sections (``clustering:``, ``finetune:``, ...), the plan
that writes ``step.json``, the job that reads it, and ``ctune train``. How parameters become
the JSON a step's id hashes (and back) is ``jobs.contract.ids``'s concern, not theirs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jobs.contract.typed import DERIVED

CLUSTERING_METHODS = ("sib", "kmeans", "hartigan")
EMBEDDINGS = ("encoder", "glove")
SAMPLINGS = ("random", "cluster")
POOLINGS = ("cls", "mean")
CLASSIC_METHODS = ("probe", "nb", "svm", "clusters")
FIT_HEADS = ("finetune", "probe", "concat")


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

    def problems(self) -> list[str]:
        """Values out of range, as ``"<field>: <message>"`` lines."""
        return []


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


@dataclass(frozen=True, kw_only=True)
class InterTrainingOptions(Optimization):
    """The options of an inter-training objective (a spec section)."""

    seeds: int = 1
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
    embedding: str = "encoder"
    """Dense vectors for kmeans/hartigan: ``encoder`` (mean-pooled embeddings of the base
    model) or ``glove`` (averaged word vectors from the ``glove`` file). Unused by sIB."""
    glove: str | None = None
    """A GloVe-format text file (a word, then its numbers, per line)."""
    glove_sha256: str | None = field(default=None, metadata={DERIVED: True})
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
    sampling: str = "random"
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

    def for_learner(self, probe: bool) -> SelfTrainOptions:
        """These options with the agreement filter a probe or a fine-tune uses when unset."""
        return dataclasses.replace(self, agree=self.agree or DEFAULT_AGREEMENT["probe" if probe else "finetune"])

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
class SelfTraining(Params):
    """A learner that may self-train (see :class:`SelfTrainOptions`); None: it does not."""

    self_training: SelfTrainOptions | None = None

    def problems(self) -> list[str]:
        st = self.self_training
        return super().problems() + ([f"self_training.{p}" for p in st.problems()] if st else [])


@dataclass(frozen=True, kw_only=True)
class FinetuneParams(Optimization, SampleParams, SelfTraining):
    """The ``finetune`` step: fine-tune an encoder on a labeled sample, evaluate on the test set."""

    kind: ClassVar[str] = "finetune"
    model: str
    """The base model (a packaged name, a folder, a hub id, an ``s3://`` folder)."""
    seed: int = 0
    """Seeds the head and the batches, plus the repetition."""


@dataclass(frozen=True, kw_only=True)
class ClassicParams(SampleParams, SelfTraining):
    """The ``classic`` step: a cell that trains no network (a probe may self-train)."""

    kind: ClassVar[str] = "classic"
    method: str
    """``probe`` (logistic regression on embeddings), ``nb``, ``svm`` (bag-of-words) or
    ``clusters`` (the cluster-only classifier)."""
    C: float = 1.0
    """Inverse regularization of the probe and the SVM."""
    max_features: int = 10000
    """Vocabulary of the bag-of-words methods."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("method", self.method, CLASSIC_METHODS, "classic method")
        if self.self_training is not None and self.method != "probe":
            out.append(f"self_training: only a probe self-trains, not {self.method!r}")
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
class EvaluateParams(Params):
    """The ``evaluate`` step: a trained model's labels for a dev set's texts (the registry's
    promotion gate scores them). ``model``: the model folder's store URI (``s3://...``, or a
    folder on this machine)."""

    kind: ClassVar[str] = "evaluate"
    model: str
    max_length: int = 128


@dataclass(frozen=True, kw_only=True)
class ExportParams(Params):
    """The ``export`` step: a trained classifier (a ``fit`` step's) as one ONNX graph, checked
    against the torch path on a dev set before a version may hold it (``jobs.kinds.export``)."""

    kind: ClassVar[str] = "export"
    max_length: int = 128
    min_agreement: float = 0.999
    """The graph's labels must equal the torch path's on at least this share of the dev texts ..."""
    max_difference: float = 1e-4
    """... and no probability may differ from the torch path's by more than this."""
    int8: bool = True
    """Also write the graph with dynamic int8 weights, and its labels on the dev set (the gate judges it)."""

    def problems(self) -> list[str]:
        out = super().problems() + _tokens(self.max_length)
        if not 0 < self.min_agreement <= 1:
            out.append(f"min_agreement: must be in (0, 1], not {self.min_agreement}")
        if not 0 < self.max_difference < 1:
            out.append(f"max_difference: must be in (0, 1), not {self.max_difference}")
        return out


@dataclass(frozen=True, kw_only=True)
class DriftParams(Params):
    """The ``drift`` step of a retraining round (``jobs.kinds.drift``): what changed in the
    corpus since the version in use, and which texts to label next.

    ``current_model`` and ``current_index``: the version in use's model folder and corpus index
    (store URIs; empty on a first round, or when that version keeps no index)."""

    kind: ClassVar[str] = "drift"
    current_version: str = ""
    current_model: str = ""
    current_index: str = ""
    batch: int = 50
    """Texts to label next."""
    pool: int = 1000
    """At most this many new and this many old clustered texts are labeled by both versions
    (the label shift and the batch are drawn from them): the step's cost does not grow with
    the corpus."""
    alpha: float = 0.01
    """Significance of each test (over all clusters together: Bonferroni)."""
    min_dev: int = 5
    """A cluster the dev set holds fewer texts of than this is one the gate barely sees."""
    emerging_weight: float = 3.0
    """How much more of the batch an emerging cluster gets than its size alone would give it."""
    examples: int = 3
    max_length: int = 128
    seed: int = 0

    def problems(self) -> list[str]:
        return (_at_least("batch", self.batch, 1) + _at_least("pool", self.pool, 10) + _rate("alpha", self.alpha)
                + _at_least("emerging_weight", self.emerging_weight, 1) + _tokens(self.max_length))


@dataclass(frozen=True, kw_only=True)
class FitParams(Optimization, SelfTraining):
    """The ``fit`` step (``ctune train``): learn from every labeled text and keep the model; a
    probe head may self-train on the corpus (``clust+concat+self``)."""

    kind: ClassVar[str] = "fit"
    model: str
    seed: int = 0
    head: str = "finetune"
    """``finetune``: fine-tune the encoder with a classification head (the protocol's options);
    ``probe``: keep the encoder frozen and fit a logistic regression on its mean-pooled
    embeddings (the ``probe`` cells' classifier; the optimization options are unused);
    ``concat``: the same on the encoder's and the pretrained model's embeddings side by side
    (the ``clust+concat`` cells' classifier)."""

    def problems(self) -> list[str]:
        out = super().problems() + _known("head", self.head, FIT_HEADS, "head")
        if self.self_training is not None and self.head == "finetune":
            out.append("self_training: only a probe head self-trains")
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
    """What the encoder learns to predict: ``clust`` (cluster ids), ``mlm`` (masked tokens)."""
    model: str
    seed: int = 0
    options: Optimization = field(default_factory=IntertrainOptimization)

    def problems(self) -> list[str]:
        return [f"options.{p}" for p in self.options.problems()]


