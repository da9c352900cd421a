"""The ``fit`` step: learn from every labeled example given and keep the classifier.

With ``head: finetune`` the saved folder is a plain ``transformers`` sequence-classification
model with the label names in its config (``id2label``), loadable without this package. With
``head: probe`` it is the frozen encoder (``AutoModel``) and a logistic regression on its
mean-pooled embeddings beside it (``jobs.lib.probe_head``); with ``head: concat`` the
pretrained encoder too, in ``base/``, the regression reading both encoders' embeddings. A
probe head that self-trains is fitted, labels the rest of the corpus, and is fitted again with
the texts it labeled most confidently (``jobs.lib.selftrain``).
"""

from __future__ import annotations

import time

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.inputs import CLUSTERS, DATASET
from jobs.contract.outputs import FIT_SUMMARY, MODEL, read_cluster_ids
from jobs.contract.params import FitParams
from jobs.contract.staging import LABELED, TRAIN, read_label_names, read_split
from jobs.lib import models
from jobs.lib.inference import embed_mean
from jobs.lib.probe_head import BESIDE, apply_head, fit_head, write_head
from jobs.lib.runner import StepContext
from jobs.lib.selftrain import pseudo_labels
from jobs.lib.tokens import split_tokens
from jobs.lib.training import train_classifier


def run(ctx: StepContext[FitParams]) -> dict:
    models.configure_threads()
    dataset = ctx.input(DATASET)
    labeled = read_split(ctx.store, dataset, LABELED)
    names = read_label_names(ctx.store, dataset)
    index = {n: i for i, n in enumerate(names)}
    gold = [index.get(y) if y is not None else None for y in labeled.labels]
    if any(g is None for g in gold):
        raise JobError("every labeled example needs a label from labels.json")
    source = ctx.starting_model()
    seed = ctx.params.seed
    tokenizer = models.load_tokenizer(source)
    if ctx.params.head in ("probe", "concat"):
        return _fit_probe(ctx, source, tokenizer, dataset, [g for g in gold if g is not None], names)
    model = models.load_classifier(source, len(names), seed)
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = index
    tokens = split_tokens(ctx.store, dataset, LABELED, tokenizer, ctx.params.max_length)
    t0 = time.time()
    stats = train_classifier(model, tokens, [g for g in gold if g is not None], ctx.params, seed)
    stats["train_s"] = round(time.time() - t0, 3)
    folder = ctx.scratch / MODEL
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ctx.put_dir(folder, MODEL)
    ctx.timings["train_s"] = stats["train_s"]
    summary = {**stats, "n_labeled": len(labeled), "labels": names, **models.device_record()}
    ctx.put_json(FIT_SUMMARY, summary)
    return summary


def _fit_probe(ctx: StepContext[FitParams], source: str, tokenizer, dataset: str, gold: list[int],
               names: list[str]) -> dict:
    encoder = models.load_encoder(source)
    encoder.config.id2label = dict(enumerate(names))
    encoder.config.label2id = {n: i for i, n in enumerate(names)}
    # an inter-trained encoder keeps the pretrained model's tokenizer: one tokenization serves both
    beside = BESIDE if ctx.params.head == "concat" else None
    encoders = {"": encoder, **({beside: models.load_encoder(ctx.params.model)} if beside else {})}
    options = ctx.params.self_training
    # self-training reads the whole corpus, which starts with the labeled texts
    split = TRAIN if options is not None else LABELED
    tokens = split_tokens(ctx.store, dataset, split, tokenizer, ctx.params.max_length)
    t0 = time.time()
    embeddings = np.hstack([
        embed_mean(e, tokens, ctx.params.max_length, ctx.progress(f"embedding {split} {name}".strip(), "texts"))
        for name, e in encoders.items()])
    labeled = np.arange(len(gold))
    head = fit_head(embeddings[labeled], gold, names, ctx.params.max_length, beside=beside)
    extra: dict = {}
    if options is not None:
        clusters = np.asarray(read_cluster_ids(ctx.store, ctx.input(CLUSTERS))) if options.agree == "cluster" else None
        rows, labels = pseudo_labels(apply_head(head, embeddings), options, labeled, clusters)
        union = np.concatenate([labeled, rows])
        head = fit_head(embeddings[union], [*gold, *labels.tolist()], names, ctx.params.max_length, beside=beside)
        extra = {"pseudo_labeled": len(rows), "corpus": len(embeddings)}
    train_s = round(time.time() - t0, 3)
    folder = ctx.scratch / MODEL
    for name, e in encoders.items():
        e.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    write_head(head, folder)
    ctx.put_dir(folder, MODEL)
    ctx.timings["train_s"] = train_s
    summary = {"head": ctx.params.head, "train_s": train_s, "n_labeled": len(gold), "labels": names, **extra,
               **models.device_record()}
    ctx.put_json(FIT_SUMMARY, summary)
    return summary
