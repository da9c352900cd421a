"""The model registry: versions of a trained classifier in a store, the pointer to the one in
use, the promotion gate and the model card (``ctune train --dev``, ``ctune models``)."""
