"""Host-side helpers for bags of features: hashed n-grams, feature dropout, one count per feature, and
supervised term weights.

They take the padded id arrays a bag model builds from token ids (``ids (B, T)`` right-padded,
``lengths (B,)``), on the host: they steer which rows are read, not the math of a step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["drop_features", "hashed_ngrams", "naive_bayes_weights", "unique_features"]

# Multipliers of the n-gram hash (fastText uses a string hash; ids hash just as well once the vocab is fixed).
_HASH_PRIMES = (1, 116_049_371, 1_000_003, 2_654_435_761)


def hashed_ngrams(
    ids: np.ndarray, lengths: np.ndarray, n: int, buckets: int, offset: int, pad_value: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Append hashed 2..n-gram ids (in ``[offset, offset + buckets)``) after each row's tokens.

    ``ids (B, T)`` right-padded, ``lengths (B,)``. Returns ``(ids (B, T'), lengths (B,))`` where
    row ``b`` holds its ``L`` tokens then its ``sum_k (L - k + 1)`` k-gram ids, then ``pad_value``.
    """
    ids = ids.astype(np.int64, copy=False)
    rows = []
    for row, length in zip(ids, lengths.astype(np.int64)):
        tokens = row[:length].astype(np.uint64)
        grams = [row[:length]]
        for k in range(2, n + 1):
            if length < k:
                break
            h = np.zeros(length - k + 1, dtype=np.uint64)
            for j in range(k):  # h = sum_j token[i + j] * prime_j (mod 2^64), then mod buckets
                h += tokens[j : length - k + 1 + j] * np.uint64(_HASH_PRIMES[j % len(_HASH_PRIMES)])
            grams.append((h % np.uint64(buckets)).astype(np.int64) + offset)
        rows.append(np.concatenate(grams))
    new_lengths = np.array([len(r) for r in rows], dtype=np.int64)
    out = np.full((len(rows), max(int(new_lengths.max(initial=0)), 1)), pad_value, dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out, new_lengths


def drop_features(
    ids: np.ndarray, lengths: np.ndarray, p: float, rng: np.random.Generator, pad_value: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Drop each of a row's first ``lengths[b]`` ids with probability ``p``, keeping at least one per row.

    ``ids (B, T)`` right-padded, ``lengths (B,)`` -> ``(ids (B, T'), lengths (B,))``: the kept ids
    in their order, then ``pad_value``. Word dropout for bags (Iyyer et al., 2015, "Deep
    Unordered Composition"): a text's label must follow from any large part of its features.
    """
    lengths = lengths.astype(np.int64, copy=False)
    real = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # (B, T)
    keep = real & (rng.random(ids.shape) >= p)
    empty = ~keep.any(axis=1) & (lengths > 0)
    keep[empty, 0] = True  # a row never becomes empty: its first feature stays
    new_lengths = keep.sum(axis=1).astype(np.int64)
    out = np.full((ids.shape[0], max(int(new_lengths.max(initial=0)), 1)), pad_value, dtype=np.int64)
    positions = np.cumsum(keep, axis=1) - 1  # (B, T): where each kept id goes
    rows = np.nonzero(keep)
    out[rows[0], positions[rows]] = ids[rows]
    return out, new_lengths


def unique_features(ids: np.ndarray, lengths: np.ndarray, pad_value: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct ids among its first ``lengths[b]``, sorted, then ``pad_value``.

    ``ids (B, T)``, ``lengths (B,)`` -> ``(ids (B, T'), lengths (B,))``: a binary bag, where a feature
    counts once per text however often it occurs (the binarized features of NBSVM).
    """
    ids = np.asarray(ids, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    real = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # (B, T)
    top = np.iinfo(np.int64).max
    ordered = np.sort(np.where(real, ids, top), axis=1)  # padding sorts last
    first = np.ones_like(real)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = first & (ordered != top)
    new_lengths = keep.sum(axis=1).astype(np.int64)
    out = np.full((ids.shape[0], max(int(new_lengths.max(initial=0)), 1)), pad_value, dtype=np.int64)
    positions = np.cumsum(keep, axis=1) - 1
    rows = np.nonzero(keep)
    out[rows[0], positions[rows]] = ordered[rows]
    return out, new_lengths


def naive_bayes_weights(
    bags: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: int, num_classes: int, alpha: float = 1.0
) -> np.ndarray:
    """Supervised term weights ``(rows,)`` float64 from labelled bags: naive Bayes log-count ratios.

    ``bags`` yields ``(ids (B, T), lengths (B,), labels (B,))`` batches of features in ``[0, rows)``;
    a feature counts once per text. For each class ``c`` and feature ``f`` seen in training, with
    ``n_c(f)`` the number of class-``c`` texts holding ``f`` and ``F`` the seen features,
    ``r_c(f) = log(p_c(f) / q_c(f))`` where ``p_c(f) = (alpha + n_c(f)) / sum_F (alpha + n_c)``
    and ``q_c`` is the same over the other classes (Wang & Manning, 2012, "Baselines and Bigrams",
    one class against the rest). The weight is ``sqrt(mean_c r_c(f)^2)``: large for a feature that
    is much more (or less) frequent in some class than elsewhere, near 0 for one spread evenly.
    Features never seen in training weigh 0, as in a vectorizer fitted on the training texts.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"naive_bayes_weights: expected alpha > 0 (additive smoothing), got {alpha!r}")
    counts = np.zeros(rows * num_classes, dtype=np.int64)
    for ids, lengths, labels in bags:
        ids, lengths = unique_features(ids, lengths)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
            raise ValueError(f"naive_bayes_weights: expected labels in [0, {num_classes}), got {labels.tolist()}")
        real = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        if ids[real].min(initial=0) < 0 or ids[real].max(initial=0) >= rows:
            raise ValueError(f"naive_bayes_weights: expected feature ids in [0, {rows}), got {ids[real].max()}")
        cells = ids * num_classes + labels[:, None]  # (B, T): one (feature, class) cell per distinct feature
        counts += np.bincount(cells[real], minlength=rows * num_classes)
    counts = counts.reshape(rows, num_classes).astype(np.float64)
    seen = counts.sum(axis=1) > 0
    if not seen.any():
        raise ValueError("naive_bayes_weights: expected at least one labelled text with features, got none")
    n_in = counts[seen] + alpha  # (F, C)
    n_out = counts[seen].sum(axis=1, keepdims=True) - counts[seen] + alpha
    ratios = np.log(n_in / n_in.sum(axis=0)) - np.log(n_out / n_out.sum(axis=0))  # (F, C)
    weights = np.zeros(rows, dtype=np.float64)
    weights[seen] = np.sqrt(np.mean(ratios**2, axis=1))
    return weights
