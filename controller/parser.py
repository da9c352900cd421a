"""The ``ctune`` command line: its subcommands and options (the commands are in ``controller.cli``)."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Mapping

from controller.models.gate import DEFAULT_LABEL_MARGIN, DEFAULT_TOLERANCE, NON_INFERIORITY, RULES
from controller.plan.packing import AUTO_PACK
from controller.plan.settings import CORPUS_PICKS, DEFAULT_CORPUS_LIMIT, DEFAULT_SETTING, TRAIN_SETTINGS

Command = Callable[[argparse.Namespace], int]

MAX_CELLS = 100_000
"""Grids above this many cells are refused unless ``--allow-large``: a typo in
``repetitions`` should be one line, not a process killed for memory."""


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (``error: ctune suggest: --budget: ...``), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (--help for usage)\n")


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"at least {low}"
    return parse

def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


SPEC_COMMANDS = (
    ("run", "run every step of the spec that is not done, then report"),
    ("plan", "show the steps of the spec and which are done"),
    ("report", "write the report: index.html (the page), results.csv/.json and summary.md"),
    ("status", "what is done, what failed, and (--kubernetes) the experiment's Jobs"),
    ("logs", "print a step's log (from the store, else from its pod); --follow while it runs"),
    ("cancel", "stop the experiment's run and delete its Kubernetes Jobs"),
    ("verify", "check every committed step's files against its commit record; uncommit what differs"),
    ("invalidate", "remove a step and every step computed from it, to compute them again"),
)


BACKENDS = ("local", "kubernetes")
"""What ``--backend`` chooses from (``ctune run`` and ``ctune train``)."""


def _backend_options(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--backend", choices=BACKENDS, default="local", help=text)
    p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)


def _kubeconfig_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)")


def _spec_command(sub, name: str, text: str, fn: Command) -> None:
    p = sub.add_parser(name, help=text, description=text)
    p.add_argument("spec", help="experiment spec (YAML)")
    p.add_argument("--store", help="store root: a folder or s3://bucket/prefix (default: spec, $CTUNE_STORE, ./store)")
    p.add_argument("--data-dir", help="folder of datasets (default: spec, $CTUNE_DATA_DIR, ../shared/data)")
    p.add_argument("--allow-large", action="store_true",
                   help=f"plan a grid of more than {MAX_CELLS:,} cells")
    if name in ("logs", "invalidate"):
        p.add_argument("step", help="step id, or its first characters")
    if name == "verify":
        p.add_argument("--deep", action="store_true", help="hash every file, not only the small ones")
    if name in ("status", "logs"):
        p.add_argument("--kubernetes", action="store_true", help="also ask the cluster")
    if name == "logs":
        p.add_argument("--follow", "-f", action="store_true",
                       help="keep printing the log as the step writes it, until it is done or failed")
    if name == "report":
        p.add_argument("--open", action="store_true",
                       help="open the page in a browser (a local store), else print its address")
    if name == "run":
        p.add_argument("--jobs", type=at_least(1), default=1, help="processes at once (default 1)")
        p.add_argument("--pack", type=at_least(1), default=AUTO_PACK,
                       help=f"cells per process, for the local backend (default {AUTO_PACK}; 1: one process per cell)")
        _backend_options(p, "local processes (default) or Kubernetes Jobs (needs an s3:// store)")
        p.add_argument("--only", help="run only steps of these kinds (comma-separated, e.g. cluster) "
                                      "and the steps they read")
        p.add_argument("--recheck", action="store_true",
                       help="list the store for committed steps even when the run's record says all are done")
        p.add_argument("--redo-older-env", action="store_true",
                       help="compute again the committed steps computed under other library versions than this "
                            "run's (the local backend: this installation's; a cluster: the newest step's), and what "
                            "was computed from them")
    if name in ("run", "status", "logs", "cancel"):
        _kubeconfig_option(p)
    p.set_defaults(fn=fn)


def _corpus_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clusters", type=at_least(2), default=50, help="number of clusters (default 50)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--store", help="where steps are cached (default $CTUNE_STORE, ./store)")


def _practitioner_commands(sub, commands: Mapping[str, Command]) -> None:
    t = sub.add_parser("train", help="train a classifier: cluster inter-training, then a linear probe on all labels",
                       description="Corpus + labeled file -> a model folder: the encoder plain transformers loads "
                                   "(AutoModel) with a linear probe beside it (clust+concat+self, clust+concat: "
                                   "and the pretrained encoder in base/), or (clust, bert) a sequence classifier "
                                   "plain transformers loads whole.")
    t.add_argument("labeled", help="labeled examples (.jsonl or .csv with text and label fields; a local file, "
                                   "an s3:// object or every .jsonl/.csv under an s3:// prefix)")
    t.add_argument("--corpus", help="unlabeled texts (.jsonl or .csv with a text field; local or s3://, as labeled)")
    t.add_argument("--out", required=True, help="model folder to create, or a model registry (s3://bucket/models/NAME, "
                                                "or a folder, with --dev): a new version behind the promotion gate")
    t.add_argument("--dev", help="labeled texts never trained on (local or s3://): both the new and the current "
                                 "version are scored on them; needed for a registry")
    t.add_argument("--tolerance", type=non_negative, default=DEFAULT_TOLERANCE,
                   help=f"points of dev accuracy and macro-F1 a new version may lose against the current one (and "
                        f"against the best promoted on the same dev set) and still be promoted: the paired "
                        f"interval's lower bound must stay above -TOLERANCE (default {DEFAULT_TOLERANCE:g}). Exit "
                        "code 4: refused (evidence that it is worse), 5: inconclusive (too few dev texts to tell)")
    t.add_argument("--label-margin", type=non_negative, default=DEFAULT_LABEL_MARGIN,
                   help=f"points one label's dev F1 may fall and the version still be promoted (default "
                        f"{DEFAULT_LABEL_MARGIN:g})")
    t.add_argument("--gate-rule", choices=RULES, default=NON_INFERIORITY,
                   help="non-inferiority (default): decide on the paired bootstrap interval of the change (95%%); "
                        "point-estimate: promote when neither point estimate fell by more than the tolerance, "
                        "whatever the dev set's size (never inconclusive)")
    t.add_argument("--corpus-limit", type=at_least(0), default=DEFAULT_CORPUS_LIMIT,
                   help=f"corpus texts (besides the labeled ones) a round clusters and inter-trains on at most; 0: all "
                        f"(default {DEFAULT_CORPUS_LIMIT}: see docs/performance.md, Bounded cost). The corpus is read "
                        "as a stream either way")
    t.add_argument("--corpus-pick", choices=CORPUS_PICKS, default="sample",
                   help="which texts when the corpus has more: sample (default: a uniform sample that keeps its "
                        "texts as the corpus grows) or newest (the last in reading order: objects in key order)")
    t.add_argument("--batch", type=at_least(1), default=50,
                   help="with a registry: how many texts the round proposes to label next (default 50; "
                        "`ctune suggest --registry` gives them)")
    t.add_argument("--model", default="minilm")
    t.add_argument("--setting", choices=TRAIN_SETTINGS, default=DEFAULT_SETTING,
                   help="clust+concat+self (default): cluster inter-training, then a logistic regression on the "
                        "inter-trained and the pretrained encoder's embeddings side by side, fitted again with the "
                        "corpus texts it labels most confidently; clust+concat: the same without the second fit; "
                        "clust+probe: on the "
                        "inter-trained encoder's alone; clust: cluster inter-training, then fine-tune; probe, "
                        "bert: the same without inter-training; auto: clust only when the clusters' AMI with your "
                        "labels is at least 0.12, else bert (held out on the shipped datasets this rule lost more "
                        "than always inter-training: see README, Advice)")
    _backend_options(t, "run the steps as local processes (default) or as Kubernetes Jobs (--store must be s3://)")
    t.add_argument("--kubernetes", metavar="FILE", help="YAML with a spec's kubernetes: settings (namespace, image, "
                                                         "gpus, ...) for --backend kubernetes (default: the defaults)")
    _kubeconfig_option(t)
    t.add_argument("--protocol", choices=["strong", "paper"], default="strong")
    t.add_argument("--label-field", default="label")
    _corpus_options(t)
    t.set_defaults(fn=commands["train"])
    sg = sub.add_parser("suggest", help="propose which texts to label first (spread over clusters by size), or give "
                                        "the texts a retraining round proposed (--registry)")
    sg.add_argument("corpus", nargs="?", help="unlabeled texts (.jsonl or .csv with a text field)")
    sg.add_argument("--budget", type=at_least(1), help="how many texts to propose (needed with a corpus)")
    sg.add_argument("--registry", metavar="REGISTRY[@VERSION]",
                    help="give the texts the round of that version proposed to label (default: the newest "
                         "version's), in the labeled files' format: fill each label and put the file under the "
                         "labeled prefix for the next round")
    sg.add_argument("--output", help="JSONL file to write (default: standard output)")
    _corpus_options(sg)
    sg.set_defaults(fn=commands["suggest"])
    pr = sub.add_parser("predict", help="label texts with a trained model folder or a registry's version")
    pr.add_argument("model", help="model folder written by ctune train, or a registry URI[@VERSION] (default: the "
                                  "current version; fetched once into the local cache)")
    pr.add_argument("texts", help="texts: .jsonl/.csv with a text field, or .txt with one text per line; with --out, "
                                  "a prefix (s3://bucket/texts/ or a folder) of such files")
    pr.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    pr.add_argument("--output", help="file to write (default: standard output)")
    pr.add_argument("--out", help="batch scoring: a prefix (s3://bucket/predictions/ or a folder) that gets "
                                  "VERSION/<file>.jsonl for every text file under TEXTS not scored by that version yet")
    _backend_options(pr, "batch scoring: here (default), or as Jobs in the controller image on the cluster")
    pr.add_argument("--kubernetes", metavar="FILE", help="batch scoring on the cluster: YAML with a spec's kubernetes: "
                                                         "settings (namespace, node selector, ...; the Jobs run the "
                                                         "controller image: controller_image)")
    _kubeconfig_option(pr)
    pr.add_argument("--jobs", type=int, default=1, help="batch scoring on the cluster: the input files split over "
                                                        "this many Jobs")
    pr.add_argument("--shard", metavar="I/N", help=argparse.SUPPRESS)
    pr.add_argument("--text-field", default="text")
    pr.add_argument("--runtime", choices=["auto", "onnx", "onnx-int8", "torch"], default="auto",
                    help="auto (default): a version's ONNX graph with onnxruntime, its int8 graph where the gate "
                         "accepted it; torch: the model folder with torch (versions published before graphs were "
                         "exported always run so)")
    pr.set_defaults(fn=commands["predict"])


def _models_commands(sub, commands: Mapping[str, Command]) -> None:
    m = sub.add_parser("models", help="a model registry: list, show, promote, roll back")
    msub = m.add_subparsers(dest="action", required=True)
    ls = msub.add_parser("ls", help="versions, dates, counts, dev metrics, the gate's word and the accuracy's change "
                                    "with its interval; the current one marked")
    ls.add_argument("registry", help="s3://bucket/models/NAME or a folder")
    show = msub.add_parser("show", help="a version's record: its inputs, the gate's evidence and decision, the "
                                        "pointer's moves; and where its model card is")
    show.add_argument("ref", help="REGISTRY[@VERSION] (default: the current version)")
    promote = msub.add_parser("promote", help="make a version current (the pointer's history is kept)")
    promote.add_argument("registry")
    promote.add_argument("version")
    rollback = msub.add_parser("rollback", help="make the version current before the current one current again")
    rollback.add_argument("registry")
    serve = msub.add_parser("serve", help="write a version's ONNX graph as a Triton model repository (what Triton "
                                          "and KServe's onnx format load: k8s/serving)")
    serve.add_argument("ref", help="REGISTRY[@VERSION] (default: the current version)")
    serve.add_argument("--out", required=True, help="where repositories go (s3://bucket/serving/NAME or a folder): "
                                                    "this version's is OUT/VERSION")
    serve.add_argument("--name", help="the model's name in the repository (default: the registry's last path part)")
    serve.add_argument("--runtime", choices=["onnx", "onnx-int8"], default="onnx",
                       help="onnx (default): the fp32 graph; onnx-int8: the int8 one (its output depends on the "
                            "requests Triton batches together)")
    m.set_defaults(fn=commands["models"])


def build_parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """``commands``: subcommand name -> the function that runs it."""
    parser = Parser(prog="ctune", description="Cluster & Tune experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in SPEC_COMMANDS:
        _spec_command(sub, name, text, commands[name])
    _practitioner_commands(sub, commands)
    _models_commands(sub, commands)
    return parser
