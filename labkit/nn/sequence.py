"""Variable-length batches: pad a list of sequences, and turn lengths into masks.

labkit has no packed-sequence type. A batch of sequences of different lengths is a
padded tensor plus ``lengths``; the recurrent layers take both
(``lstm(padded, lengths=lengths)``) and behave like PyTorch on a packed sequence:
outputs are zero past each sequence's end and final states are taken at its last step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.backends.device import DeviceLike
from labkit.core.tensor import Tensor
from labkit.ops.pad import pad
from labkit.ops.rnn_scan import as_lengths
from labkit.ops.shape import stack, swapaxes

__all__ = ["lengths_to_mask", "pad_sequence", "unpad_sequence"]


def pad_sequence(
    sequences: Sequence[Tensor],
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> Tensor:
    """Stack sequences ``(L_i, *)`` into ``(T, B, *)`` (or ``(B, T, *)`` with ``batch_first``).

    ``T = max L_i``; shorter sequences are filled with ``padding_value`` after their end
    (before their start with ``padding_side="left"``). Differentiable in every sequence.
    """
    if isinstance(sequences, Tensor) or not isinstance(sequences, (list, tuple)):
        raise TypeError(f"pad_sequence: expected a list or tuple of Tensors, got {type(sequences).__name__}")
    if not sequences:
        raise ValueError("pad_sequence: expected at least one sequence, got an empty list")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: expected padding_side 'right' or 'left', got {padding_side!r}")
    first = sequences[0]
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {i} is a {type(s).__name__}, expected a Tensor")
        if s.ndim == 0 or s.shape[1:] != first.shape[1:] or s.dtype != first.dtype:
            raise ValueError(
                f"pad_sequence: expected every sequence of shape (L, *{first.shape[1:]}) and dtype {first.dtype}, "
                f"got sequence {i} of shape {s.shape} and dtype {s.dtype}"
            )
    longest = max(s.shape[0] for s in sequences)
    trailing = [0, 0] * (first.ndim - 1)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        before, after = (0, missing) if padding_side == "right" else (missing, 0)
        padded.append(pad(s, (*trailing, before, after), value=padding_value))
    return stack(padded, axis=0 if batch_first else 1)


def lengths_to_mask(lengths: Any, max_len: int | None = None, device: DeviceLike | None = None) -> Tensor:
    """A bool mask ``(B, T)``: ``mask[b, t] = t < lengths[b]``, True on real (non-padding) steps.

    ``T`` is ``max_len`` or, when None, the longest length. The mask lives on ``device``,
    by default on the device of ``lengths`` when that is a Tensor, else on the CPU.
    """
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer))):
        raise TypeError(f"lengths_to_mask: expected an int max_len, got {type(max_len).__name__}")
    if max_len is not None and max_len < 0:
        raise ValueError(f"lengths_to_mask: expected max_len >= 0, got {max_len}")
    batch = len(lengths) if not isinstance(lengths, Tensor) or lengths.ndim == 1 else -1
    if batch < 0:
        raise ValueError(f"lengths_to_mask: expected 1-D lengths (B,), got shape {lengths.shape}")
    host = as_lengths(lengths, batch, max_len, "lengths_to_mask")
    steps = int(host.max(initial=0)) if max_len is None else int(max_len)
    mask = np.arange(steps)[None, :] < host[:, None]  # (B, T)
    if device is None and isinstance(lengths, Tensor):
        device = lengths.device
    return Tensor(mask, device=device)


def unpad_sequence(padded: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    """The inverse of ``pad_sequence``: sequences ``(L_b, *)`` from ``(T, B, *)`` (or ``(B, T, *)``)."""
    if not isinstance(padded, Tensor):
        raise TypeError(f"unpad_sequence: expected a Tensor, got {type(padded).__name__}")
    if padded.ndim < 2:
        raise ValueError(f"unpad_sequence: expected a padded batch of at least 2 dimensions, got {padded.shape}")
    batched = padded if batch_first else swapaxes(padded, 0, 1)  # (B, T, *)
    host = as_lengths(lengths, batched.shape[0], batched.shape[1], "unpad_sequence")
    return [batched[b, : int(n)] for b, n in enumerate(host)]
