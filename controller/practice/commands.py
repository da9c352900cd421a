"""The practitioner's commands: ``ctune train`` (a model folder, or a version in a registry
through the gate), ``ctune predict``, ``ctune suggest`` and ``ctune models``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from controller.plan.spec import store_uri
from controller.practice.corpus import CorpusBound
from controller.run.backends.base import Backend
from controller.run.live import Progress, say
from jobs.contract.errors import EXIT_INCONCLUSIVE, EXIT_NOT_PROMOTED, EXIT_OK
from jobs.contract.params import ClusterParams
from jobs.data import DataError, output_stream
from jobs.storage import Store, open_store


def _practitioner_store(args: argparse.Namespace) -> Store:
    store = open_store(store_uri(None, args.store))
    store.check()
    return store


def _announce_training(info: dict) -> None:
    """Before the inter-training and fine-tuning start: what was measured, what will run."""
    from controller.analysis.advice import RULE_FINDING, THRESHOLD

    if "labeled_ami" in info:
        say(f"clusters vs your {info['labeled']} labeled texts: AMI {info['labeled_ami']:.3f} "
            f"(NMI {info['labeled_nmi']:.3f}; 0: no agreement beyond chance)")
    why = {"auto": f"the advice: inter-train when AMI >= {THRESHOLD}; {RULE_FINDING}",
           "clust": "cluster inter-training, then fine-tune",
           "clust+concat": "cluster inter-training, then a linear probe on it and the pretrained encoder",
           "clust+concat+self": "cluster inter-training, then a linear probe on it and the pretrained encoder, "
                                "fitted again with the corpus texts it labels most confidently",
           "clust+probe": "cluster inter-training, then a linear probe", "probe": "a linear probe only",
           "bert": "fine-tune only"}[info["asked"]]
    say(f"setting: {info['setting']} ({why}); training on {info['corpus']} corpus texts ...")


def cmd_train(args: argparse.Namespace) -> int:
    from controller.models.registry import is_registry
    from controller.plan.modelcheck import check_model
    from controller.practice.training import TrainRequest, run_training

    registry = bool(args.dev) or is_registry(args.out)
    if registry and args.backend == "kubernetes" and not str(args.out).startswith("s3://"):
        raise DataError(f"--out {args.out} is a folder: with --backend kubernetes the registry must be in the "
                        "store the pods read (s3://bucket/models/NAME)")
    check_model(args.model, local=args.backend == "local")
    if registry and not args.dev:
        raise DataError(f"--out {args.out} is a model registry: --dev (labeled texts never trained on) is needed "
                        "to score a new version against the current one")
    store = _practitioner_store(args)
    req = TrainRequest(labeled=args.labeled, out=Path(args.out), corpus=args.corpus, model=args.model,
                       setting=args.setting, protocol=args.protocol,
                       text_field=args.text_field, label_field=args.label_field,
                       clustering=ClusterParams(n_clusters=args.clusters),
                       bound=CorpusBound(args.corpus_limit, args.corpus_pick))
    backend = _train_backend(store, args)
    if registry:
        return _train_to_registry(store, req, args, backend)
    info = run_training(store, req, Progress(), _announce_training, backend)
    why = " (chosen by the advice)" if info["asked"] == "auto" else ""
    say(f"model written to {args.out}: {info['labeled']} labeled and {info['corpus']} corpus texts, "
        f"{len(info['labels'])} labels, setting {info['setting']}{why}"
        + (f" ({info['protocol']} protocol)" if info["protocol"] else ""))
    return EXIT_OK


def _train_backend(store: Store, args: argparse.Namespace) -> Backend:
    if args.backend == "kubernetes":  # before anything is written: the cluster must answer
        from controller.run.kube.commands import section_backend
        from controller.run.kube.config import KubernetesSpec, load_section

        k = load_section(args.kubernetes) if args.kubernetes else KubernetesSpec()
        return section_backend(k, "train", store, args.kubeconfig, poll_s=args.poll)
    from controller.run.backends.local import LocalBackend

    return LocalBackend(store)


def gate_settings(args: argparse.Namespace):
    from controller.models.gate import GateSettings

    return GateSettings(rule=args.gate_rule, tolerance=args.tolerance, label_margin=args.label_margin)


def _train_to_registry(store: Store, req, args: argparse.Namespace, backend: Backend) -> int:
    from controller.models.gate import INCONCLUSIVE, PROMOTE
    from controller.practice.training import train_to_registry

    t0 = time.time()
    out = train_to_registry(store, req, args.out, args.dev, gate_settings(args), Progress(), _announce_training,
                            say, backend, args.batch)
    code = {PROMOTE: EXIT_OK, INCONCLUSIVE: EXIT_INCONCLUSIVE}.get(out.outcome, EXIT_NOT_PROMOTED)
    if not out.new:
        if out.outcome == PROMOTE:
            say(f"nothing new: version {out.version} of these inputs is in {args.out} already and was promoted "
                f"({'current' if out.promoted else 'not current now'}; current: {out.current})")
        else:
            say(f"nothing new: version {out.version} of these inputs is in {args.out} already, "
                f"{'refused' if out.outcome != INCONCLUSIVE else 'inconclusive'} on this dev set with these gate "
                f"settings when it was decided ({out.why}); current now: {out.current}")
        return code
    if out.promoted:
        say(f"promoted {out.version} in {args.out} ({out.why}) in {time.time() - t0:.0f} s")
    elif out.outcome == INCONCLUSIVE:
        say(f"inconclusive: {out.version} is recorded in {args.out} but {out.current} stays current ({out.why})")
    else:
        say(f"refused: {out.version} is recorded in {args.out} but {out.current} stays current ({out.why})")
    return code


def cmd_models(args: argparse.Namespace) -> int:
    from controller.models.commands import models_command

    return models_command(args, say)


def cmd_predict(args: argparse.Namespace) -> int:
    from controller.models.registry import Registry, is_registry, split_ref
    from controller.models.runtime import TORCH, choose_runtime
    from controller.plan.modelcheck import check_classifier
    from controller.practice.training import run_predict
    from jobs.serving import has_graph

    _check_predict_options(args)
    if args.out:  # batch scoring of a prefix
        from controller.practice import scoring

        found = scoring.prepared(args)
        if args.backend == "kubernetes":
            from controller.practice.scoring_jobs import score_on_cluster

            return score_on_cluster(args, *found)
        return scoring.score_here(args, *found)
    if not Path(args.texts).is_file():
        raise DataError(f"{args.texts}: no such file")
    model = args.model
    uri, version = split_ref(model)
    if is_registry(uri):
        registry = Registry(uri)
        registry.store.check()
        version = registry.resolve(version)
        runtime = choose_runtime(registry.record(version), args.runtime)
        say(f"version {version}: {runtime.name}, {runtime.why}")
        if runtime.onnx:
            return _predict_onnx(registry.fetch_serving(version), runtime.int8, args)
        model = str(registry.fetch(version))
    elif has_graph(Path(model).expanduser(), args.runtime == "onnx-int8") and args.runtime != TORCH:
        return _predict_onnx(Path(model).expanduser(), args.runtime == "onnx-int8", args)  # a version's onnx/ folder
    elif args.runtime not in ("auto", TORCH):
        raise DataError(f"{model}: no ONNX graph there for --runtime {args.runtime} (a registry version's onnx/ "
                        "folder, or REGISTRY[@VERSION], has one)")
    check_classifier(Path(model).expanduser())
    argv = [model, args.texts, "--format", args.format, "--text-field", args.text_field]
    return run_predict(argv + (["--output", args.output] if args.output else []))


def _check_predict_options(args: argparse.Namespace) -> None:
    """Options of one mode given in the other are an error, not ignored."""
    if args.out:
        given = [o for o, on in (("--output", args.output), ("--format csv", args.format != "jsonl")) if on]
        if given:
            raise DataError(f"{', '.join(given)}: with --out (batch scoring) each input file gets its own "
                            "predictions file (JSON lines)")
        return
    given = [o for o, on in (("--backend kubernetes", args.backend == "kubernetes"), ("--jobs", args.jobs != 1),
                             ("--kubernetes", args.kubernetes), ("--shard", args.shard)) if on]
    if given:
        raise DataError(f"{', '.join(given)}: only with --out (batch scoring of a prefix)")


def _predict_onnx(folder: Path | None, int8: bool, args: argparse.Namespace) -> int:
    """The version's ONNX graph with onnxruntime, in this process (no torch)."""
    from jobs.serving import predict, read_texts, write_predictions

    assert folder is not None  # choose_runtime picks onnx only for a version that has a graph
    rows = predict(folder, read_texts(Path(args.texts), args.text_field), int8)
    with output_stream(args.output) as out:
        write_predictions(rows, args.format, out)
    return EXIT_OK


def cmd_suggest(args: argparse.Namespace) -> int:
    import json

    from controller.practice.training import suggest

    if args.registry:
        if args.corpus or args.budget:
            raise DataError("ctune suggest: give a corpus and --budget, or --registry, not both")
        return _suggest_from_registry(args)
    if not args.corpus or not args.budget:
        raise DataError("ctune suggest: a corpus and --budget are needed (or --registry REGISTRY[@VERSION])")
    store = _practitioner_store(args)
    rows = suggest(store, Path(args.corpus), args.budget, ClusterParams(n_clusters=args.clusters),
                   args.text_field, Progress())
    with output_stream(args.output) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    say(f"{len(rows)} texts to label, from {len({r['cluster'] for r in rows})} clusters")
    return EXIT_OK


def _suggest_from_registry(args: argparse.Namespace) -> int:
    """The texts a round proposed, as its version keeps them (``to_label.jsonl``)."""
    import json

    from controller.models.registry import TO_LABEL, Registry, RegistryError, split_ref

    uri, version = split_ref(args.registry)
    registry = Registry(uri)
    registry.store.check()
    if version is None:
        versions = registry.versions()
        if not versions:
            raise RegistryError(f"{uri} holds no version")
        version = versions[-1]["version"]
    data = registry.round_file(version, TO_LABEL)
    if data is None:
        raise RegistryError(f"{uri}@{version}: its round proposed no texts to label (a version from before rounds "
                            "did, or one trained outside a registry)")
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    with output_stream(args.output) as out:
        for row in rows:  # under your field name for the text, as the labeled files have it
            row = {args.text_field: row.pop("text"), **row}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    n = len(rows)
    say(f"{n} texts to label from the round of {version}: fill each \"label\" and put the file under the labeled "
        "prefix for the next round")
    return EXIT_OK
