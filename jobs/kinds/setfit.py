"""The ``setfit`` step: SetFit (the ``setfit`` package's trainer) on a labeled sample, evaluated
on the test set.

The body is the spec's model, or the inter-trained encoder (``clust+setfit``). An inter-trained
encoder is a plain transformer folder; it gets the base model's sentence-transformers modules
(pooling, normalization), so both settings embed texts the same way and differ only by weights.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.inputs import ENCODER
from jobs.contract.params import SetFitParams
from jobs.lib import models
from jobs.lib.cells import CellData, load_cell_data, write_cell
from jobs.lib.runner import StepContext

log = logging.getLogger(__name__)

ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
"""What makes a folder a sentence-transformers model, beside the transformer's own files."""


def body_folder(encoder: str, base: str, scratch: Path) -> str:
    """The folder (or hub id) to load the body from: ``encoder`` with ``base``'s sentence
    modules when ``base`` is a sentence-transformers folder and ``encoder`` is not."""
    base_dir, encoder_dir = Path(base), Path(encoder)
    if encoder == base or not (base_dir / "modules.json").is_file() or (encoder_dir / "modules.json").is_file():
        return encoder
    folder = scratch / "body"
    shutil.copytree(encoder_dir, folder, dirs_exist_ok=True)
    for name in ST_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, folder / name)
    for module in json.loads((base_dir / "modules.json").read_text()):
        path = module.get("path") or ""
        if path and (base_dir / path).is_dir():
            shutil.copytree(base_dir / path, folder / path, dirs_exist_ok=True)
    return str(folder)


def _setfit():
    try:
        import setfit
    except ImportError:
        raise JobError("the setfit settings need the setfit package: pip install 'cluster-tune[jobs]'") from None
    return setfit


def _model(setfit, body: str, max_length: int):
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    try:
        st = SentenceTransformer(body, device=str(models.device()))
    except (OSError, ValueError) as exc:
        raise JobError(f"cannot load {body} as a SetFit body: {str(exc).splitlines()[0]}") from None
    st.max_seq_length = max_length
    return setfit.SetFitModel(model_body=st, model_head=LogisticRegression())


def last_loss(history: list[dict]) -> float | None:
    """The last logged training loss (SetFit's body trainer logs ``embedding_loss``)."""
    for entry in reversed(history):
        for key in ("embedding_loss", "loss"):
            if key in entry:
                return float(entry[key])
    return None


def _log_lines_not_bars(st_trainer, progress) -> None:
    """The step's log gets a line every ``logging_steps`` (loss, learning rate), not a bar
    redrawn on every optimizer step; and the step's progress (``jobs.contract.progress``)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class _Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            progress(state.global_step, state.max_steps, last_loss(state.log_history))

    st_trainer.remove_callback(ProgressCallback)
    st_trainer.add_callback(PrinterCallback)
    st_trainer.add_callback(_Progress)
    st_trainer.args.dataloader_pin_memory = models.device().type == "cuda"


def train_setfit(ctx: StepContext[SetFitParams], data: CellData, body: str, seed: int):
    """A trained SetFit model and its training statistics."""
    setfit = _setfit()
    from datasets import Dataset

    p = ctx.params
    models.seed_everything(seed)
    model = _model(setfit, body, p.max_length)
    args = setfit.TrainingArguments(
        output_dir=str(ctx.scratch / "setfit"), batch_size=p.batch_size, num_epochs=p.epochs,
        num_iterations=p.num_iterations, sampling_strategy=p.sampling_strategy,
        body_learning_rate=p.body_lr, max_length=p.max_length, seed=seed, save_strategy="no",
        report_to="none", show_progress_bar=False, logging_steps=25)
    train = Dataset.from_dict({"text": data.sample_texts, "label": data.sample_labels})
    trainer = setfit.Trainer(model=model, args=args, train_dataset=train)
    _log_lines_not_bars(trainer.st_trainer, ctx.progress("SetFit body training"))
    trainer.train()
    return model, {"optimizer_steps": int(trainer.st_trainer.state.global_step)}


def run(ctx: StepContext[SetFitParams]) -> dict:
    params = ctx.params
    models.configure_threads()
    data = load_cell_data(ctx)
    base = models.resolve_model(params.model)
    body = body_folder(ctx.starting_model() if ctx.has_input(ENCODER) else base, base, ctx.scratch)
    seed = params.seed + params.repetition
    t0 = time.time()
    model, stats = train_setfit(ctx, data, body, seed)
    t1 = time.time()
    batch = models.accelerator().eval_batch
    pred = np.asarray(model.predict(list(data.test.texts), batch_size=batch, as_numpy=True, show_progress_bar=False))
    t2 = time.time()
    ctx.timings.update(train_s=round(t1 - t0, 3), eval_s=round(t2 - t1, 3))
    metrics = write_cell(ctx, data, pred.astype(int).tolist(),
                         {**stats, **models.device_record(), **ctx.timings})
    log.info("budget %s rep %s: accuracy %.4f", params.budget, params.repetition, metrics["accuracy"])
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
