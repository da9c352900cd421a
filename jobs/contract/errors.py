"""Errors and exit codes, one table for the controller and the jobs.

Every error this project reports is a :class:`CtuneError`: one line for the user, and a
``retryable`` flag saying whether doing the same thing again can succeed.

A job (``python -m jobs``) exits with

* ``0`` (:data:`EXIT_OK`) when its steps are committed;
* ``2`` (:data:`EXIT_BAD_INPUT`) when an error is not retryable: a bad input or parameter,
  a missing or refused object in the store. The step writes ``_FAILED``; a Kubernetes Job
  is stopped (``podFailurePolicy``) instead of retried;
* ``75`` (:data:`EXIT_CLAIMED`) when another live process holds the step's claim
  (``jobs.contract.claims``): nothing was computed; the step is done, or will be, elsewhere;
* ``1`` (:data:`EXIT_FAILED`) for a retryable error (the store cannot be reached) and for
  anything unexpected (a traceback): the Job controller may retry the pod.

The ``ctune`` command exits with ``2`` when it could not start what was asked because of
its input or environment (spec, data, model, store, cluster; nothing was run), ``1`` when
steps ran and some failed (:class:`StepsFailed`), ``3`` when the store stopped answering
mid-run for longer than its outage window (``CTUNE_STORE_OUTAGE_S``), ``4`` when ``ctune
train`` into a registry trained a version the promotion gate refused (it is recorded, not
current; the same version run again on the same dev set with the same gate settings exits 4
again), ``5`` when the gate
found the dev set too small to tell (inconclusive: recorded, not current), ``6`` when other
writers kept moving the registry's pointer (run again), ``130`` when interrupted (Ctrl-C), ``143`` when terminated (SIGTERM).
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_STORE_OUTAGE = 3
EXIT_NOT_PROMOTED = 4
"""The gate refused the version (evidence that it is worse)."""
EXIT_INCONCLUSIVE = 5
"""The gate could not tell on this dev set; the current version stays."""
EXIT_RACED = 6
EXIT_CLAIMED = 75


class CtuneError(Exception):
    """An error reported as one line, with no traceback."""

    retryable: bool = False
    """Whether the same thing, done again unchanged, can succeed."""


class BadInput(CtuneError, ValueError):
    """Something the user gave (spec, data, model, parameter) is wrong: retrying will not help."""


class JobError(BadInput):
    """A step's inputs or parameters are wrong, found by the job."""


class Claimed(CtuneError):
    """Another live process holds the step's claim: this one must not compute it now."""

    retryable = True


class StepsFailed(CtuneError):
    """Steps ran and some failed; their logs were shown."""

    retryable = True


def job_exit_code(exc: BaseException) -> int:
    """The exit code of a job that raised ``exc``."""
    if isinstance(exc, Claimed):
        return EXIT_CLAIMED
    if isinstance(exc, CtuneError) and not exc.retryable:
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def cli_exit_code(exc: CtuneError) -> int:
    """The exit code of ``ctune`` for an error it reports."""
    if getattr(exc, "exit_code", None) is not None:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if getattr(exc, "outage", False):
        return EXIT_STORE_OUTAGE
    return EXIT_FAILED if isinstance(exc, StepsFailed) else EXIT_BAD_INPUT


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|"
                           r"awsaccesskeyid|token|password)=)[^&\s]+")


def redact(text: str) -> str:
    """``text`` with credentials in URLs masked: ``user:password@`` and signed query values."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
