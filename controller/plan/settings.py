"""The settings a spec can compare: where a cell starts, and how it learns from the labels.

Every inter-training of the registry (``jobs.contract.intertrainings``) is a fine-tune
setting of its own name; the rest are listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.contract.intertrainings import BASE, INTER_TRAININGS, chain
from jobs.contract.kinds import KINDS


@dataclass(frozen=True)
class Setting:
    name: str
    start: str | None
    """``base`` (the pretrained encoder), an inter-training of the registry, or None (no encoder)."""
    method: str
    """``finetune`` the whole encoder, ``setfit`` (contrastive fine-tuning, then a logistic
    regression head), ``probe`` (logistic regression on frozen embeddings), ``nb`` / ``svm``
    over the stemmed bag-of-words, or ``clusters`` (cluster-only)."""
    about: str
    beside: str | None = None
    """For a probe: another encoder whose embeddings it reads too, concatenated to the start's."""
    self_trains: bool = False
    """A fine-tune or a probe that learns, then labels the other train texts, keeps the confident
    ones (the spec's ``selftrain`` section) and learns again on both."""

    @property
    def kind(self) -> str:
        """The step kind that computes a cell of this setting: the cell kind its method names
        (``finetune``, ``setfit``, a registered one), else ``classic`` (probe, nb, svm, clusters)."""
        found = KINDS.get(self.method)
        return found.name if found is not None and found.cell else "classic"

    @property
    def fine_tunes(self) -> bool:
        """Whether its cells fine-tune the encoder under a protocol (``paper``, ``strong``)."""
        return self.method == "finetune"

    @property
    def needs_clusters(self) -> bool:
        """Whether a cell of this setting reads the dataset's clustering, itself or upstream."""
        if self.method == "clusters" or self.self_trains:  # self-training may keep cluster-agreeing labels only
            return True
        return self.start not in (None, BASE) and any(i.needs_clusters for i in chain(str(self.start)))


def all_settings() -> dict[str, Setting]:
    """Every setting, by name: ``bert``, one per inter-training, then the reference methods."""
    listed = [Setting("bert", BASE, "finetune", "fine-tune the pretrained encoder (no inter-training)")]
    listed += [Setting(i.name, i.name, "finetune", i.about) for i in INTER_TRAININGS.values()]
    listed += [
        Setting("probe", BASE, "probe", "logistic regression on the pretrained encoder's frozen embeddings"),
        Setting("clust+probe", "clust", "probe", "logistic regression on the inter-trained encoder's embeddings"),
        Setting("clust+concat", "clust", "probe", "logistic regression on the pretrained and the inter-trained "
                "encoder's embeddings side by side", beside=BASE),
        Setting("clust+concat+self", "clust", "probe", "clust+concat, then fitted again with the train texts it "
                "labels most confidently", beside=BASE, self_trains=True),
        Setting("self", BASE, "finetune", "fine-tune, pseudo-label the train texts, fine-tune again on both",
                self_trains=True),
        Setting("clust+self", "clust", "finetune", "self-training from the cluster inter-trained encoder",
                self_trains=True),
        Setting("setfit", BASE, "setfit", "SetFit (the setfit package) with the pretrained encoder as body"),
        Setting("clust+setfit", "clust", "setfit", "SetFit with the cluster inter-trained encoder as body"),
        Setting("nb", None, "nb", "multinomial Naive Bayes over the stemmed bag-of-words"),
        Setting("svm", None, "svm", "linear SVM over the stemmed bag-of-words"),
        Setting("clusters", None, "clusters", "cluster-only: each cluster labeled by the majority of its sample"),
    ]
    return {s.name: s for s in [*listed, *REGISTERED.values()]}


REGISTERED: dict[str, Setting] = {}
"""Settings added at run time (``register``), e.g. by a plugin that adds a cell kind."""


def register(setting: Setting) -> None:
    """A setting of a registered cell kind (``jobs.contract.kinds``: its method is the kind's
    name, its start an encoder or None)."""
    REGISTERED[setting.name] = setting


SETTINGS = all_settings()

TRAIN_SETTINGS = ("clust+concat+self", "clust+concat", "clust+probe", "clust", "probe", "bert", "auto")
"""What ``ctune train`` can run (controller.practice.training)."""

DEFAULT_SETTING = "clust+concat+self"
"""What ``ctune train`` runs unless told otherwise: cluster inter-training, then a linear probe
on the inter-trained and the pretrained encoder's embeddings side by side, which labels the
corpus and is fitted again with the texts it labels most confidently. Chosen
leave-one-dataset-out on the shipped datasets at 64 labels (controller.analysis.recipe_loo; README,
"Results"): the choice for every held-out dataset, with the smallest worst shortfall of the
settings measured on all six (before it, ``clust+concat``); where the clusters carry little of
the labels (ISEAR, polarity) SetFit does better. The advice rule (``auto``, controller.analysis.advice)
lost more points than always inter-training when judged the same way; the AMI is still
measured and reported."""

CORPUS_PICKS = ("sample", "newest")
"""Which corpus texts a bounded ``ctune train`` clusters and inter-trains on (controller.practice.corpus)."""

DEFAULT_CORPUS_LIMIT = 5_000
"""Corpus texts (besides the labeled ones) ``ctune train`` clusters and inter-trains on at most;
see docs/performance.md, "Bounded cost", for the measurement it was chosen from."""
