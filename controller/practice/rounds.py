"""A retraining round's report: what changed in the corpus since the version in use, and the
texts to label next (a ``drift`` step, run by the round's backend like its other steps: in the
job image on a cluster).

What the round keeps with its version (``controller.models.registry``): the corpus index (a
digest per corpus text read, so that the next round can tell which texts are new), the report
(the drift step's ``drift.json``, kept in the version's record) and the batch to label
(``to_label.jsonl``).
"""

from __future__ import annotations

import json

from controller.models.registry import Registry, RoundFiles
from controller.plan.graph import Plan, cluster_step
from controller.run.backends.base import Backend
from jobs.contract.inputs import CLASSIFIER, CLUSTERS, DATASET, DEV
from jobs.contract.outputs import DRIFT, TO_LABEL
from jobs.contract.params import ClusterParams, DriftParams, clustering_problem
from jobs.contract.steps import StepSpec
from jobs.storage import Store


def drift_step(params: DriftParams, dataset: str, clusters: str, fit: str, dev: str | None) -> StepSpec:
    inputs = {DATASET: dataset, CLUSTERS: clusters, CLASSIFIER: fit, **({DEV: dev} if dev else {})}
    return StepSpec("drift", params, inputs, "what changed, what to label next")


def against_current(registry: Registry, batch: int, seed: int = 0) -> DriftParams:
    """The drift step's parameters for a round into ``registry``: against the version in use
    (none on a first round, or when the registry no longer holds it; no index to compare with
    when it was published without one)."""
    current = registry.pointer().current
    if current is None or not registry.has(current):
        return DriftParams(batch=batch, seed=seed)
    index = registry.corpus_index_uri(current)
    return DriftParams(current_version=current, current_model=registry.model_uri(current),
                       current_index=index or "", batch=batch, seed=seed)


def round_files(store: Store, backend: Backend, on_event, params: DriftParams, clustering: ClusterParams,
                dataset: str, texts: int, index_key: str, fit: StepSpec, dev: str | None) -> RoundFiles:
    """Run (or find done) the round's clustering and drift step on the staged ``dataset`` (of
    ``texts`` corpus texts); what to keep with the version, the corpus index read from
    ``index_key``. The report is advice: a round whose corpus is too small to cluster, or whose
    drift step failed, keeps the version's index and says why in place of the report."""
    index = store.read_bytes(index_key)
    problem = clustering_problem(texts, clustering.n_clusters)
    if problem:
        return RoundFiles({"error": f"not computed: the round's corpus has {problem}"}, b"", index)
    clust = cluster_step(clustering, dataset, "corpus")
    step = drift_step(params, dataset, clust.prefix, fit.prefix, dev)
    # every step it reads is in the plan (found done), or the scheduler would wait for it
    result = backend.run(Plan({clust.id: clust, fit.id: fit, step.id: step}, (), {}), on_event)
    if not result.ok:
        failed = step if step.id in result.failed else clust
        return RoundFiles({"error": f"not computed: the {failed.kind} step failed (its log: {failed.prefix}/log.txt "
                                    "in the store)"}, b"", index)
    return RoundFiles(json.loads(store.read_bytes(f"{step.prefix}/{DRIFT}")),
                      store.read_bytes(f"{step.prefix}/{TO_LABEL}"), index)
