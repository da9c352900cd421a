"""One claimant per step: who may compute a step, so two controllers never compute it twice.

A claim is an object ``<step>/_claims/<generation>`` created only if absent (``O_EXCL``-like
hard link on a folder, ``If-None-Match: *`` on S3): of two processes that want the same
generation, exactly one gets it. It names its owner and an expiry the owner renews while
the step runs. The live claim is the highest generation; once it has expired (its owner
died or hung), the next claimant creates the next generation and takes the step over. A
claimant whose claim was taken over (it did not renew in time) stops before committing.

No deletes are involved, so no race between "the old claim is stale" and "remove it": a
takeover is one more conditional create.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from jobs.contract.errors import Claimed
from jobs.storage import Store

CLAIMS = "_claims"
TTL_ENV = "CTUNE_CLAIM_TTL"
DEFAULT_TTL_S = 300.0
"""A claim not renewed for this long is taken over (renewed every quarter of it)."""


__all__ = ["Claim", "Claimed", "Heartbeat", "acquire", "current", "new_owner", "release", "still_held", "ttl_s"]


def ttl_s() -> float:
    try:
        return max(1.0, float(os.environ.get(TTL_ENV, DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


OWNER_ENV = "CTUNE_CLAIM_OWNER"
"""Set on Kubernetes to the Job's name: a retried pod of the same Job is the same claimant."""


def new_owner() -> str:
    return os.environ.get(OWNER_ENV) or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_here(owner: str) -> bool:
    """The owner is a process of this host that no longer exists (killed: it could not release)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Claim:
    prefix: str
    generation: int
    owner: str
    expires: float

    @property
    def key(self) -> str:
        return claim_key(self.prefix, self.generation)

    def to_bytes(self) -> bytes:
        return (json.dumps({"owner": self.owner, "generation": self.generation, "expires": self.expires}) + "\n").encode()

    def live(self, now: float | None = None) -> bool:
        return self.expires > (time.time() if now is None else now) and not _dead_here(self.owner)


def claim_key(prefix: str, generation: int) -> str:
    return f"{prefix}/{CLAIMS}/{generation:08d}"


def current(store: Store, prefix: str) -> Claim | None:
    """The step's live-or-stale claim of the highest generation (None: never claimed)."""
    keys = sorted(k for k in store.list(f"{prefix}/{CLAIMS}") if k.rsplit("/", 1)[-1].isdigit())
    if not keys:
        return None
    generation = int(keys[-1].rsplit("/", 1)[-1])
    try:
        raw = json.loads(store.read_bytes(keys[-1]))
        return Claim(prefix, generation, str(raw["owner"]), float(raw["expires"]))
    except (ValueError, KeyError, TypeError):  # unreadable: treat as expired, so it can be taken over
        return Claim(prefix, generation, "?", 0.0)


def acquire(store: Store, prefix: str, owner: str, ttl: float | None = None) -> Claim | None:
    """The step's claim for ``owner``, or None when another live claimant holds it."""
    ttl = ttl_s() if ttl is None else ttl
    held = current(store, prefix)
    if held is not None and held.owner == owner:
        return held
    if held is not None and held.live():
        return None
    claim = Claim(prefix, 0 if held is None else held.generation + 1, owner, time.time() + ttl)
    if store.create_bytes(claim.key, claim.to_bytes()):
        return claim
    # refused: another claimant, or our own PUT that landed before a connection reset and was retried
    now_held = current(store, prefix)
    return now_held if now_held is not None and now_held.owner == owner else None


def release(store: Store, claim: Claim) -> None:
    """Give the step up (it failed here): the next claimant need not wait for the expiry."""
    store.write_bytes(claim.key, Claim(claim.prefix, claim.generation, claim.owner, 0.0).to_bytes())


def still_held(store: Store, claim: Claim) -> bool:
    """No later generation exists (nobody took the step over)."""
    latest = current(store, claim.prefix)
    return latest is not None and latest.generation == claim.generation and latest.owner == claim.owner


class Heartbeat:
    """Renews a claim in the background; ``check()`` raises once it may have been lost."""

    def __init__(self, store: Store, claim: Claim, ttl: float | None = None):
        self.store, self.claim = store, claim
        self.ttl = ttl_s() if ttl is None else ttl
        self.renewed = time.time()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not still_held(self.store, self.claim):
                    self.lost = "another process took the step over"
                    return
                renewed = Claim(self.claim.prefix, self.claim.generation, self.claim.owner, time.time() + self.ttl)
                self.store.write_bytes(renewed.key, renewed.to_bytes())
                self.claim, self.renewed = renewed, time.time()
            except Exception:  # the store is unreachable for now: check() decides when it is too long
                continue

    def check(self) -> None:
        """Raise unless this process still holds its claim (renewed within the TTL)."""
        if self.lost is None and time.time() - self.renewed > self.ttl * 0.9:
            self.lost = f"the claim was not renewed for {time.time() - self.renewed:.0f} s"
        if self.lost:
            raise Claimed(f"step {self.claim.prefix}: {self.lost}; not writing or committing it")
