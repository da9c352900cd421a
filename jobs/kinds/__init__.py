"""One module per step kind: ``run(ctx) -> summary``; ``python -m jobs <kind>`` runs it."""
