"""The ``analyze`` step: how inter-training moved the embeddings (paper section 5.3).

For a fixed random subset of the test texts: [CLS] embeddings from the base encoder and
from the inter-trained one, the normalized embedding distance (NED) of each with the
gold labels and a permutation test of the drop (``ned.json``), and a t-SNE picture of
both, colored by gold label (``tsne.png``).
"""

from __future__ import annotations

import io
import time

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.inputs import DATASET
from jobs.contract.outputs import NED, TSNE
from jobs.contract.params import AnalyzeParams
from jobs.contract.staging import TEST, read_split
from jobs.lib import models
from jobs.lib.inference import embed_cls, embed_mean
from jobs.lib.ned import ned_permutation_test
from jobs.lib.runner import StepContext
from jobs.lib.tokens import split_tokens

POOLINGS = {"cls": embed_cls, "mean": embed_mean}


def tsne_picture(before: np.ndarray, after: np.ndarray, labels: list[str], title: str, seed: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    names = sorted(set(labels))
    colors = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (name, x) in zip(axes, (("before inter-training", before), ("after inter-training", after))):
        xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed,
                  init="pca").fit_transform(x)
        for i, label in enumerate(names):
            mask = np.array([y == label for y in labels])
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, color=colors(i % colors.N), label=label)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def run(ctx: StepContext[AnalyzeParams]) -> dict:
    models.configure_threads()
    p = ctx.params
    test = read_split(ctx.store, ctx.input(DATASET), TEST)
    rng = np.random.default_rng(p.seed)
    n = min(p.max_texts, len(test))
    idx = np.sort(rng.choice(len(test), size=n, replace=False))
    labels = [str(test.labels[i]) for i in idx]
    if len(set(labels)) < 2:
        raise JobError("the analysed test texts hold fewer than two labels")
    t0 = time.time()
    vectors = {}
    for which, source in (("before", p.model), ("after", ctx.starting_model())):
        tokens = split_tokens(ctx.store, ctx.input(DATASET), TEST, models.load_tokenizer(source), p.max_length)
        vectors[which] = POOLINGS[p.pooling](models.load_encoder(source), tokens.take(idx), p.max_length)
    embed_s = time.time() - t0
    test_result = ned_permutation_test(vectors["before"], vectors["after"], labels,
                                       permutations=p.permutations, seed=p.seed)
    result = {**test_result.as_dict(), "pooling": p.pooling, "inter_training": p.inter_training}
    ctx.put_json(NED, result)
    if p.tsne:
        title = (f"{ctx.spec.label}: NED {test_result.before:.3f} -> {test_result.after:.3f} "
                 f"(p={test_result.p_value:.3g}, {n} test texts, {p.pooling} embeddings)")
        ctx.put_bytes(TSNE, tsne_picture(vectors["before"], vectors["after"], labels, title, p.seed))
    ctx.timings.update(embed_s=round(embed_s, 3), analysis_s=round(time.time() - t0 - embed_s, 3))
    return result
