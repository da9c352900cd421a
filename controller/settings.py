"""The settings a spec can compare: where a cell starts, and how it learns from the labels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    start: str | None
    """``base`` (the pretrained encoder), an inter-training (``clust``, ``mlm``, ``mlm+clust``),
    or None (no encoder)."""
    method: str
    """``finetune`` the whole encoder, ``probe`` (logistic regression on frozen embeddings),
    or ``nb`` / ``svm`` over the stemmed bag-of-words."""
    about: str

    @property
    def kind(self) -> str:
        """The step kind that computes a cell of this setting."""
        return "finetune" if self.method == "finetune" else "classic"


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("bert", "base", "finetune", "fine-tune the pretrained encoder (no inter-training)"),
    Setting("clust", "clust", "finetune", "inter-train on cluster ids, then fine-tune"),
    Setting("mlm", "mlm", "finetune", "masked-LM inter-training on the unlabeled texts, then fine-tune"),
    Setting("mlm+clust", "mlm+clust", "finetune", "masked-LM, then cluster inter-training, then fine-tune"),
    Setting("probe", "base", "probe", "logistic regression on the pretrained encoder's frozen embeddings"),
    Setting("clust+probe", "clust", "probe", "logistic regression on the inter-trained encoder's embeddings"),
    Setting("nb", None, "nb", "multinomial Naive Bayes over the stemmed bag-of-words"),
    Setting("svm", None, "svm", "linear SVM over the stemmed bag-of-words"),
    Setting("clusters", None, "clusters", "cluster-only: each cluster labeled by the majority of its sample"),
)}
