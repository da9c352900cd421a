"""Backends run a plan's steps: ``local`` (processes on this machine) and ``controller.run.kube``."""
