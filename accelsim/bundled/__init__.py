"""Models shipped as package data, built by ``python -m benchmarks.models.build_zoo --bundle``.

- ``lenet5``: LeNet-5 on 32x32 digits; input ``image`` float32 (B, 1, 32, 32) -> ``logits`` (B, 10).
- ``dlrm_small``: DLRM, one-hot lookups (Gather), ~31k table rows; inputs ``dense_x`` float32
  (B, 13), ``sparse_ids`` int64 (B, 26) -> ``ctr`` float32 (B, 1).

Each folder holds ``model.onnx``, ``eval_inputs.npz`` (keyed by graph input name),
``eval_labels.npy`` and ``card.json`` (accuracy / AUC, parameter counts, op histogram).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

NAMES = ("lenet5", "dlrm_small")


def path(name: str) -> Path:
    """Folder of the bundled model ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise KeyError(f"no bundled model {name!r}; bundled models: {', '.join(NAMES)}")
    return Path(str(resources.files(__name__).joinpath(name)))
