"""The promotion gate measured on real versions (docs/registry.md, the gate's table).

    python -m bench.gate [--spec experiments/gate_versions.yaml] [--store STORE] [--trials 40]

Run ``ctune run experiments/gate_versions.yaml`` first: per dataset it computes two cluster
inter-trainings of the packaged MiniLM (seeds 0 and 1) and the embeddings of every train and
test text by each and by the pretrained encoder. Here the default recipe's probe
(``clust+concat+self``: a logistic regression on the inter-trained and the pretrained encoder's
embeddings side by side, fitted again with the corpus texts it labels most confidently, as the
``classic`` step fits it) is fitted on the grid's first 64-label sample:

* ``current``: clean labels, on the seed-0 inter-training;
* ``other seed``: clean labels, on the seed-1 inter-training (what retraining alone moves);
* ``noise 10/20/40%``: on the seed-1 inter-training, with that share of the labels replaced by
  another label (seeded).

Each new version is compared with ``current`` on dev sets of 100, 300 and 1,000 texts drawn
without replacement from the test texts (``--trials`` draws per size), by the gate's rule at its
defaults and at other tolerances, and by the point-estimate rule at 1 point (the rule before).
Prints how many trials were promoted / refused / inconclusive per cell, and each pair's change
on all the test texts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

SIZES = (100, 300, 1000)
NOISE = (0.1, 0.2, 0.4)
TOLERANCES = (1.0, 2.0, 3.0)


def _encoders(plan, dataset_prefix: str) -> dict[str, str]:
    """The embed steps of one dataset: ``base``, ``seed 0``, ``seed 1`` -> step prefix."""
    from jobs.contract.inputs import DATASET, ENCODER

    by_prefix = {s.prefix: s for s in plan.steps.values()}
    out = {}
    for step in plan.steps.values():
        if step.kind != "embed" or step.inputs.get(DATASET) != dataset_prefix:
            continue
        encoder = step.inputs.get(ENCODER)
        out["base" if encoder is None else f"seed {by_prefix[encoder].params.seed}"] = step.prefix
    return out


def _fit_default(train: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> object:
    """The default recipe's probe, fitted as the ``classic`` step fits ``clust+concat+self``."""
    from sklearn.linear_model import LogisticRegression

    from jobs.contract.params import SelfTrainOptions
    from jobs.lib.selftrain import pseudo_labels

    clf = LogisticRegression(C=1.0, max_iter=2000).fit(train[sample], labels[sample])
    rows, columns = pseudo_labels(clf.predict_proba(train), SelfTrainOptions().for_learner(probe=True), sample)
    union = np.concatenate([sample, rows])
    return LogisticRegression(C=1.0, max_iter=2000).fit(train[union], np.concatenate([labels[sample],
                                                                                        clf.classes_[columns]]))


def _noisy(labels: np.ndarray, sample: np.ndarray, share: float, seed: int) -> np.ndarray:
    """The labels with ``share`` of the sample's replaced by another label."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    names = np.unique(labels)
    for i in rng.choice(sample, size=round(share * len(sample)), replace=False):
        out[i] = rng.choice(names[names != labels[i]])
    return out


def versions(store, plan, prefix: str, budget: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test texts' gold labels, and each version's predicted labels for them."""
    from jobs.contract.outputs import read_embeddings
    from jobs.contract.sampling import sample_indices
    from jobs.contract.staging import TEST, TRAIN, read_split

    enc = _encoders(plan, prefix)
    train_labels = np.asarray([str(y) for y in read_split(store, prefix, TRAIN).labels])
    gold = np.asarray([str(y) for y in read_split(store, prefix, TEST).labels])
    sample = sample_indices(len(train_labels), budget, 0, seed)

    def features(seed_name: str, split: str) -> np.ndarray:
        return np.hstack([read_embeddings(store, enc[seed_name], split), read_embeddings(store, enc["base"], split)])

    out = {}
    for name, inter, labels in [("current", "seed 0", train_labels), ("other seed", "seed 1", train_labels),
                                *[(f"noise {round(100 * p)}%", "seed 1", _noisy(train_labels, sample, p, 7))
                                  for p in NOISE]]:
        clf = _fit_default(features(inter, TRAIN), labels, sample)
        out[name] = np.asarray(clf.predict(features(inter, TEST)), dtype=str)
    return gold, out


def measure(gold: np.ndarray, preds: dict[str, np.ndarray], trials: int, seed: int) -> list[dict]:
    from controller.models.evidence import paired_evidence
    from controller.models.gate import NON_INFERIORITY, POINT_ESTIMATE, GateSettings, judge

    rules = {f"tolerance {t:g}": GateSettings(NON_INFERIORITY, t) for t in TOLERANCES}
    rules["point estimate, 1"] = GateSettings(POINT_ESTIMATE, 1.0)
    rows = []
    rng = np.random.default_rng(seed)
    current = preds["current"]
    for name, new in preds.items():
        if name == "current":
            continue
        whole = paired_evidence(gold, new, current)
        for size in (s for s in SIZES if s <= len(gold)):
            counts: dict[str, Counter] = {r: Counter() for r in rules}
            for _ in range(trials):
                pick = rng.choice(len(gold), size=size, replace=False)
                e = paired_evidence(gold[pick], new[pick], current[pick])
                for rule, settings in rules.items():
                    counts[rule][judge(e, settings)[0]] += 1
            rows.append({"version": name, "all_test": {"n": whole.n, "accuracy": whole.accuracy.text(),
                                                       "macro_f1": whole.macro_f1.text(),
                                                       "disagreement": round(whole.disagreement, 4)},
                         "size": size, "trials": trials, "counts": {r: dict(c) for r, c in counts.items()}})
    return rows


def _share(c: dict, trials: int) -> str:
    """Trials promoted / refused / inconclusive, as counts (of ``trials``)."""
    return " / ".join(str(c.get(k, 0)) for k in ("promote", "refuse", "inconclusive"))


def table(results: dict[str, list[dict]]) -> str:
    rules = list(next(iter(results.values()))[0]["counts"])
    lines = ["| dataset | new version | change on all test texts (accuracy, 95%) | dev texts | "
             + " | ".join(f"{r}: promoted / refused / inconclusive" for r in rules) + " |",
             "|---|---|---|---:|" + "---|" * len(rules)]
    lines += [f"| {dataset} | {r['version']} | {r['all_test']['accuracy']} on {r['all_test']['n']} | {r['size']} | "
              + " | ".join(_share(r["counts"][k], r["trials"]) for k in rules) + " |"
              for dataset, rows in results.items() for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from controller.plan.datasets import prepare_all, resolve_data_dir
    from controller.plan.graph import build_plan
    from controller.plan.spec import load_spec
    from jobs.storage import open_store

    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="experiments/gate_versions.yaml")
    parser.add_argument("--store", default=None, help="the store the spec ran in (default: the spec's)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out", default="gate-measured.json")
    args = parser.parse_args(argv)
    spec = load_spec(Path(args.spec))
    prepared = prepare_all(spec, resolve_data_dir(spec, None), args.spec)
    plan = build_plan(spec, {n: p.prefix for n, p in prepared.items()}, {n: p.corpus_prefix for n, p in prepared.items()})
    store = open_store(args.store or str(spec.store))
    t0 = time.time()
    results = {}
    for name, p in prepared.items():
        gold, preds = versions(store, plan, p.prefix, spec.budgets[0], spec.seed)
        results[name] = measure(gold, preds, args.trials, seed=11)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\ncounts of {args.trials} dev sets per size; {time.time() - t0:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
