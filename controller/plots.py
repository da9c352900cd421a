"""Accuracy against the label budget (log scale), per dataset and setting: the paper's Figure 2."""

from __future__ import annotations

import io
import math

from controller.stats import mean_sem


def accuracy_plot(rows: list[dict], datasets: list[str], columns: list[str]) -> bytes:
    """A PNG with one panel per dataset; lines are settings, error bars the SEM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for column in columns:
            points = []
            for b in sorted({r["budget"] for r in rows}):
                acc = [100 * r["accuracy"] for r in rows
                       if r["dataset"] == dataset and r["column"] == column and r["budget"] == b]
                if acc:
                    mean, sem = mean_sem(acc)
                    points.append((b, mean, 0.0 if math.isnan(sem) else sem))
            if points:
                xs, ys, es = zip(*points)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=column)
        ax.set_xscale("log", base=2)
        ax.set_title(dataset)
        ax.set_xlabel("labeled examples")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
