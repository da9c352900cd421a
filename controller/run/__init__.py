"""Running a plan: the backends (local processes, Kubernetes Jobs) and what a run records.

Importing it registers each backend's section of the spec (``kubernetes:``)."""

from controller.run.kube import config as _kube_config  # noqa: F401
