"""The practitioner's wing: ``ctune train`` (a model folder, or a version in a registry through
the gate), ``predict``, ``suggest`` and ``models`` (commands), and the steps they run (training)."""
