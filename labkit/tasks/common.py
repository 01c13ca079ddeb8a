"""Helpers shared by the built-in tasks: reading the ``data`` config, splits, loaders, devices.

A task is built as ``TaskClass(data_cfg=cfg.data, generator=...)``. ``read_options`` turns
``data_cfg`` (a dict or an OmegaConf node; nothing here imports OmegaConf) into a plain dict
of the task's known keys with their defaults, refusing unknown keys by name, so a typo in
``data.batchsize`` fails before any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from labkit.core.mode import no_grad
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.data.loader import DataLoader
from labkit.data.sampler import permutation, seed_from
from labkit.nn.module import Module

__all__ = [
    "COMMON_DATA_KEYS",
    "make_loader",
    "metric_name",
    "model_device",
    "named_splits",
    "read_options",
    "split_indices",
    "to_device",
]

#: keys every task's data node accepts
COMMON_DATA_KEYS: dict[str, Any] = {
    "name": None,
    "data_dir": None,  # where downloaded datasets live (None: ~/.labkit/data)
    "batch_size": 64,
    "eval_batch_size": None,  # None: max(batch_size, 256)
    "val_fraction": 0.1,
    "num_workers": 0,
    "split_seed": 0,  # splits depend on this, not on the run seed, so every run sees the same split
    "limit": None,  # keep at most this many training examples (quick checks)
}


def _plain(value: Any) -> Any:
    """Mappings and non-string sequences (OmegaConf's DictConfig/ListConfig included) as dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def read_options(task: str, data_cfg: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``COMMON_DATA_KEYS`` and ``defaults`` updated by ``data_cfg``; unknown keys raise ValueError."""
    if data_cfg is None:
        data_cfg = {}
    if not isinstance(data_cfg, Mapping):
        raise TypeError(f"{task}: expected the data config as a mapping, got {type(data_cfg).__name__}")
    known = {**COMMON_DATA_KEYS, **defaults}
    given = _plain(data_cfg)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{task}: unknown data key(s) {unknown}; expected keys among {sorted(known)}")
    options = {**known, **given}
    if options["name"] is None:
        raise ValueError(f"{task}: expected data.name (a dataset name), got None")
    for key in ("batch_size", "num_workers"):
        value = options[key]
        low = 1 if key == "batch_size" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{task}: expected data.{key} as an int >= {low}, got {value!r}")
    fraction = options["val_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"{task}: expected data.val_fraction in [0, 1), got {fraction!r}")
    if options["eval_batch_size"] is None:
        options["eval_batch_size"] = max(options["batch_size"], 256)
    return options


def split_indices(n: int, fractions: Iterable[float], seed: int) -> list[np.ndarray]:
    """A seeded shuffle of ``range(n)`` cut into consecutive parts of the given ``fractions``;
    the last part takes the rest. The same ``(n, fractions, seed)`` gives the same parts on every machine."""
    order = permutation(n, int(seed), 0)
    parts, start = [], 0
    for fraction in fractions:
        stop = start + round(n * float(fraction))
        parts.append(np.sort(order[start:stop]))
        start = stop
    parts.append(np.sort(order[start:]))
    return parts


def make_loader(
    dataset: Any,
    batch_size: int,
    shuffle: bool,
    generator: Generator | None,
    num_workers: int = 0,
    collate_fn: Any = None,
    drop_last: bool = False,
    batch_sampler: Any = None,
) -> DataLoader:
    """A ``DataLoader`` seeded from ``generator`` (one draw), so loaders built from one run seed are reproducible."""
    seed = seed_from(generator)
    if batch_sampler is not None:
        return DataLoader(
            dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate_fn, seed=seed
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        seed=seed,
    )


def model_device(model: Module) -> Any:
    """The device of the model's first parameter (``cpu`` for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return "cpu"


def to_device(batch: Any, device: Any) -> Any:
    """``batch`` (a Tensor, or tuples/lists/dicts of them) on ``device``; other values pass through."""
    if isinstance(batch, Tensor):
        return batch if batch.device == device else batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def eval_batches(model: Module, loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches on the model's device, with the model in eval mode under ``no_grad``.

    The model's train/eval mode is restored when the iteration ends or is abandoned.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                yield to_device(batch, device)
    finally:
        model.train(was_training)


_BAD_METRIC_CHARS = re.compile(r"[^0-9A-Za-z_\-. ]+")


def metric_name(text: str) -> str:
    """``text`` with the characters MLflow refuses in metric names replaced by ``_``."""
    return _BAD_METRIC_CHARS.sub("_", str(text)).strip() or "_"


def named_splits(loaded: Any) -> dict[str, Any]:
    """``{"train", "val", "test"}`` from what a catalog loader returned (missing ones are None).

    A mapping (or an object with ``as_dict()``) may name its validation split ``val``, ``valid``
    or ``validation``; anything else is one dataset, returned as ``train``.
    """
    if hasattr(loaded, "as_dict") and not isinstance(loaded, Mapping):  # e.g. ForecastSplits
        loaded = loaded.as_dict()
    if isinstance(loaded, Mapping):
        if "train" not in loaded:
            raise ValueError(f"dataset splits: expected a 'train' split, got {sorted(loaded)}")
        val = next((loaded[k] for k in ("val", "valid", "validation") if k in loaded), None)
        return {"train": loaded["train"], "val": val, "test": loaded.get("test")}
    return {"train": loaded, "val": None, "test": None}
