"""A running step's progress: throttled lines and ``progress.json`` (``jobs.contract.progress``),
``ctune run``'s live line (``controller.run.live``) and ``ctune logs --follow``
(``controller.run.follow``), on a local store with a fake clock."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from controller.run.backends.base import Event
from controller.run.follow import follow
from controller.run.live import LivePage, LiveStatus, Progress
from jobs.contract.claims import acquire, release
from jobs.contract.params import ClusterParams
from jobs.contract.progress import PROGRESS, StepProgress, format_duration, read_progress
from jobs.contract.steps import FAILED, LOG, MARKER, StepSpec
from jobs.storage import LocalStore

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_progress_lines_and_record_are_throttled_and_read_the_loss_only_when_due(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CTUNE_PROGRESS_S", "30")
    store, clock, reads = LocalStore(tmp_path), Clock(), []
    progress = StepProgress("fine-tuning", "batches", store, "steps/finetune/x", clock=clock)
    assert read_progress(store, "steps/finetune/x").done == 0  # announced at once

    def loss() -> float:
        reads.append(clock.t)
        return 0.5

    with caplog.at_level("INFO", logger="progress"):
        for step in range(1, 121):
            clock.t += 0.5  # 2 batches/s, 60 s in all
            progress(step, 120, loss)
    lines = [r.getMessage() for r in caplog.records]
    # a line every 30 s, the record every 10 s: the loss read only then
    assert lines == ["fine-tuning: 60/120 batches (50%), 2 batches/s, ETA 30s, loss 0.500",
                     "fine-tuning: 120/120 batches (100%), 2 batches/s, ETA 0s, loss 0.500"]
    assert len(reads) == 6
    record = read_progress(store, "steps/finetune/x")
    assert (record.done, record.total, record.unit, record.loss) == (120, 120, "batches", 0.5)
    assert json.loads((tmp_path / "steps/finetune/x" / PROGRESS).read_text())["phase"] == "fine-tuning"


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (0, 59.4, 61, 3600 + 125)] == ["0s", "59s", "1m01s", "1h02m"]


def _step(label: str = "ag_news", k: int = 4) -> StepSpec:
    return StepSpec("cluster", ClusterParams(n_clusters=k), {"dataset": "datasets/x"}, label)


def test_live_status_follows_a_packs_current_step(tmp_path):
    store = LocalStore(tmp_path)
    first, second = _step("a"), _step("b", 5)
    live = LiveStatus(store, io.StringIO(), interval=0)
    live.on_event(Event("start", first, unit=(first, second)))
    assert live.lines() == ["cluster a: starting"]
    StepProgress("clustering", "restarts", store, first.prefix)
    assert live.lines() == ["cluster a: clustering (0s so far)"]  # a phase not counted yet: how long it runs
    live.on_event(Event("done", first))
    assert live.lines() == ["cluster b: starting"]
    live.on_event(Event("done", second))
    assert live.lines() == []


def test_live_status_prints_plain_lines_off_a_terminal(tmp_path):
    store, out = LocalStore(tmp_path), io.StringIO()
    step = _step()
    StepProgress("clustering", "restarts", store, step.prefix)
    with LiveStatus(store, out, interval=0.05) as live:
        live.on_event(Event("start", step, unit=(step,)))
        time.sleep(0.3)
        live.say("[1/1] ok")
    text = out.getvalue()
    assert "  ~ cluster ag_news: clustering (0s so far)" in text and "[1/1] ok" in text and "\r" not in text


def test_live_page_is_throttled_and_never_stops_the_run(capsys):
    calls = []
    page = LivePage(lambda: calls.append(1), interval=3600)
    step = _step()
    page.on_event(Event("done", step))
    page.on_event(Event("done", step))
    page.on_event(Event("start", step))
    assert calls == [1]

    def broken() -> None:
        raise OSError("disk full")

    LivePage(broken, interval=0).now()
    assert "could not write the report page: disk full" in capsys.readouterr().err


def test_follow_prints_a_growing_log_until_the_step_is_done(tmp_path):
    store, step = LocalStore(tmp_path), _step()
    out, err = io.StringIO(), io.StringIO()
    ticks = []

    def sleep(_: float) -> None:  # the step, as follow() polls: claimed, logs twice, commits
        ticks.append(1)
        if len(ticks) == 1:
            acquire(store, step.prefix, "me", ttl=60)
            store.write_bytes(f"{step.prefix}/{LOG}", b"line 1\n")
        elif len(ticks) == 2:
            store.write_bytes(f"{step.prefix}/{LOG}", b"line 1\nline 2\n")
        elif len(ticks) == 3:
            store.write_bytes(f"{step.prefix}/{LOG}", b"line 1\nline 2\nline 3\n")
            store.write_bytes(f"{step.prefix}/{MARKER}", b"{}")

    assert follow(store, step, out, err, poll_s=0, sleep=sleep) == 0
    assert out.getvalue() == "line 1\nline 2\nline 3\n"
    assert "waiting for step" in err.getvalue() and f"step {step.id} is done" in err.getvalue()


def test_follow_ends_with_an_error_when_the_step_fails_or_stops(tmp_path):
    store, step = LocalStore(tmp_path), _step()
    store.write_bytes(f"{step.prefix}/{FAILED}", json.dumps({"error": "cluster: too few texts"}).encode())
    err = io.StringIO()
    assert follow(store, step, io.StringIO(), err, poll_s=0, sleep=lambda _: None) == 1
    assert "failed: cluster: too few texts" in err.getvalue()

    other = _step("b", 5)
    claim = acquire(store, other.prefix, "me", ttl=60)
    release(store, claim)  # it gave up without a _FAILED (a crash): follow() does not wait forever
    clock = iter(range(100))
    err = io.StringIO()
    assert follow(store, other, io.StringIO(), err, poll_s=1, clock=lambda: next(clock), sleep=lambda _: None) == 1
    assert "stopped without finishing" in err.getvalue()


def test_follow_sees_a_log_copied_live_by_a_step_process(tmp_path, monkeypatch):
    """The job side's live copy (jobs.lib.livelog) and follow() together, in threads."""
    from jobs.lib import livelog

    monkeypatch.setenv("CTUNE_LOG_FLUSH_S", "0.2")
    store, step = LocalStore(tmp_path), _step()
    buffer = io.StringIO()
    out = io.StringIO()
    result = {}
    follower = threading.Thread(target=lambda: result.update(code=follow(store, step, out, io.StringIO(), poll_s=0.1)))
    follower.start()
    with livelog.capturing(buffer):
        acquire(store, step.prefix, "job", ttl=60)
        livelog.claimed(store, step.prefix)
        buffer.write("loading\n")
        time.sleep(0.6)
        seen_midway = out.getvalue()
        buffer.write("trained\n")
        time.sleep(0.6)
    store.write_bytes(f"{step.prefix}/{LOG}", buffer.getvalue().encode())
    store.write_bytes(f"{step.prefix}/{MARKER}", b"{}")
    follower.join(timeout=10)
    assert seen_midway == "loading\n"  # printed while the step still ran
    assert result["code"] == 0 and out.getvalue() == "loading\ntrained\n"


def test_setfit_progress_reads_its_body_trainers_loss():
    from jobs.kinds.setfit import last_loss

    history = [{"embedding_loss": 0.33, "epoch": 0.1}, {"train_runtime": 5.0}, {"embedding_loss": "0.0652"}]
    assert last_loss(history) == pytest.approx(0.0652) and last_loss([{"loss": 1.5}]) == 1.5
    assert last_loss([{"train_runtime": 5.0}]) is None



def test_the_step_count_shows_a_total_only_where_one_is_known():
    step = _step()
    for total, first, last in ((2, "[1/2] ok", "[2/2] FAILED"), (None, "[1] ok", "[2] FAILED")):
        lines: list[str] = []
        progress = Progress(total, lines.append)
        progress(Event("start", step))
        progress(Event("done", step, 1.0))
        progress(Event("failed", step, 2.0, "boom"))
        assert [line.split(" cluster")[0].rstrip() for line in lines] == ["  ...", first, last, "    | boom"], lines
