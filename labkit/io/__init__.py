"""``labkit.io``: checkpoints without pickle, and safetensors files.

labkit.io.save({"model": model.state_dict(), "step": 10}, "ckpt.lk")
state = labkit.io.load("ckpt.lk", map_location="cpu")
weights = labkit.io.load_safetensors("model.safetensors")
"""

from __future__ import annotations

from labkit.io.checkpoint import CheckpointError, atomic_write, load, save
from labkit.io.safetensors import load_safetensors, safetensors_metadata, save_safetensors

__all__ = [
    "CheckpointError",
    "atomic_write",
    "load",
    "load_safetensors",
    "safetensors_metadata",
    "save",
    "save_safetensors",
]
