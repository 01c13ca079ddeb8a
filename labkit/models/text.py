"""Text classifiers over padded token ids: ``BagOfEmbeddings``, ``TextLSTM``, ``TextTransformer``.

Every model has the same call: ``model(ids, lengths)`` with ``ids (B, T)`` int64 right-padded
with ``padding_idx`` and ``lengths (B,)`` the number of real tokens, returning logits
``(B, num_classes)``. Without ``lengths`` (``model(ids)``, e.g. a served model) the lengths are
the counts of non-padding ids per row. The text task builds these batches; the models take the sizes it
reports (``vocab_size``, ``num_classes``, ``padding_idx``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import labkit.functional as F
import labkit.nn as nn
from labkit.core.random import Generator, resolve
from labkit.core.tensor import Tensor
from labkit.data.collate import pad_sequences
from labkit.models._checks import choice, positive_int, probability
from labkit.models.bag_features import drop_features, hashed_ngrams, naive_bayes_weights, unique_features

__all__ = [
    "BagOfEmbeddings",
    "TextLSTM",
    "TextTransformer",
    "drop_features",
    "hashed_ngrams",
    "infer_lengths",
    "masked_max",
    "masked_combine",
    "masked_mean",
]


def _host(x: Any) -> np.ndarray:
    """A host numpy copy of a Tensor or array (ids and lengths steer indexing, not math)."""
    if isinstance(x, Tensor):
        x = x.data
    return np.asarray(x.get() if hasattr(x, "get") else x)


def infer_lengths(ids: Any, lengths: Any, padding_idx: int | None) -> np.ndarray:
    """``lengths`` as host int64 ``(B,)``; when None, each row's count of ids other than ``padding_idx``."""
    if lengths is not None:
        return _host(lengths).astype(np.int64)
    host = _host(ids)
    if padding_idx is None:
        return np.full(host.shape[0], host.shape[1], dtype=np.int64)
    return (host != padding_idx).sum(axis=1).astype(np.int64)


COMBINERS = ("mean", "sqrtn", "sum")


def masked_combine(x: Tensor, lengths: Any, combiner: str = "mean", weights: Tensor | None = None) -> Tensor:
    """Sum over the first ``lengths[b]`` steps of ``x (B, T, D)`` -> ``(B, D)``, padding ignored, divided
    by ``lengths[b]`` (``"mean"``), by ``sqrt(lengths[b])`` (``"sqrtn"``) or by 1 (``"sum"``).

    TensorFlow's embedding combiners. For a bag of distinct features, ``"sqrtn"`` is the bag's
    count vector L2-normalized (as a TF-IDF vectorizer's ``norm="l2"``), ``"mean"`` L1-normalized.
    With ``weights (B, T)`` (constants, e.g. term weights) step ``t`` counts ``weights[b, t]`` times:
    the weighted sum is divided by the weights' sum (``"mean"``) or by the square root of their
    squares' sum (``"sqrtn"``); a row whose weights are all 0 pools to 0.
    """
    combiner = choice("masked_combine", "combiner", combiner, COMBINERS)
    host = _host(lengths).astype(np.int64)
    steps = x.shape[1]
    wide = np.float64 if x.data.dtype == np.float64 else np.float32  # float64 models keep full precision
    mask = (np.arange(steps)[None, :] < host[:, None]).astype(wide)  # (B, T)
    if weights is None:
        count = np.maximum(host, 1)[:, None].astype(wide)  # (B, 1)
        divisor = {"mean": count, "sqrtn": np.sqrt(count), "sum": np.ones_like(count)}[combiner]
        scale = Tensor((mask / divisor)[:, :, None], dtype=x.dtype, device=x.device)  # (B, T, 1)
        return (x * scale).sum(axis=1)  # (B, D)
    w = weights.detach().astype(x.dtype) * Tensor(mask, dtype=x.dtype, device=x.device)  # (B, T)
    if combiner == "mean":
        w = w / F.maximum(w.sum(axis=1, keepdims=True), np.finfo(wide).tiny)
    elif combiner == "sqrtn":
        w = w / F.maximum(F.sqrt((w * w).sum(axis=1, keepdims=True)), np.finfo(wide).tiny)
    return (x * w.unsqueeze(2)).sum(axis=1)  # (B, D)


def masked_mean(x: Tensor, lengths: Any) -> Tensor:
    """Mean over the first ``lengths[b]`` steps of ``x (B, T, D)`` -> ``(B, D)`` (padding ignored)."""
    return masked_combine(x, lengths, "mean")


def masked_max(x: Tensor, lengths: Any) -> Tensor:
    """Max over the first ``lengths[b]`` steps of ``x (B, T, D)`` -> ``(B, D)``; padded steps never win.

    Steps past a row's length are set to -inf before the max, so a padded zero cannot beat real
    negative values (an LSTM's outputs are zero there). A row of length 0 keeps its step 0.
    """
    host = _host(lengths).astype(np.int64)
    padded = np.arange(x.shape[1])[None, :] >= np.maximum(host, 1)[:, None]  # (B, T) True = padding
    mask = Tensor(padded[:, :, None], device=x.device)  # (B, T, 1)
    return F.max(F.masked_fill(x, mask, -np.inf), axis=1)  # (B, D)


class BagOfEmbeddings(nn.Module):
    """fastText: the mean of word and hashed n-gram embeddings, then dropout and a linear layer.

    The table has ``vocab_size + buckets`` rows: ids ``< vocab_size`` are words, the rest are
    2..``ngrams``-grams hashed from consecutive word ids (computed here from ``ids``, so the
    task needs no n-gram pipeline). Embeddings start U(-1/dim, 1/dim) as in fastText.
    ``feature_dropout`` drops each word and n-gram id of a training text with that probability
    (:func:`drop_features`; not in eval mode). ``hidden`` adds a ReLU layer of that width between
    the mean and the output layer (a deep averaging network, Iyyer et al. 2015); 0 (default)
    keeps fastText's single linear layer. ``pooling`` combines a text's feature embeddings
    (:func:`masked_combine`): ``"mean"`` (fastText, the default), ``"sqrtn"`` (the sum over the square
    root of the feature count: the L2-normalized bag of a TF-IDF vectorizer, so long texts are not
    averaged away) or ``"sum"``. ``binary`` counts each feature once per text. ``weighting="nb"``
    weighs each feature by a supervised term weight, the root mean square over classes of its naive
    Bayes log-count ratios (:func:`labkit.models.bag_features.naive_bayes_weights`, after NBSVM):
    features that tell classes apart count more, ones spread evenly count less, unseen ones not at
    all. The weights are statistics of the training texts, so :meth:`fit_term_weights` must see those
    texts before training (the text task calls it); they are a buffer, saved with the model.
    Shapes: ``ids (B, T)`` int, ``lengths (B,)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 64,
        ngrams: int = 2,
        buckets: int = 50_000,
        dropout: float = 0.0,
        padding_idx: int | None = 0,
        generator: Generator | None = None,
        feature_dropout: float = 0.0,
        hidden: int = 0,
        pooling: str = "mean",
        binary: bool = False,
        weighting: str = "none",
    ) -> None:
        super().__init__()
        name = "BagOfEmbeddings"
        self.pooling = choice(name, "pooling", pooling, COMBINERS)
        if not isinstance(binary, bool):
            raise TypeError(f"{name}: expected binary true or false, got {type(binary).__name__} {binary!r}")
        self.binary = binary
        self.weighting = choice(name, "weighting", weighting, ("none", "nb"))
        self.vocab_size = positive_int(name, "vocab_size", vocab_size)
        self.num_classes = positive_int(name, "num_classes", num_classes)
        embed_dim = positive_int(name, "embed_dim", embed_dim)
        self.ngrams = positive_int(name, "ngrams", ngrams)
        self.buckets = positive_int(name, "buckets", buckets) if self.ngrams > 1 else 0
        rows = self.vocab_size + self.buckets
        self.embedding = nn.Embedding(rows, embed_dim, padding_idx=padding_idx, generator=generator)
        nn.init.uniform_(self.embedding.weight, -1.0 / embed_dim, 1.0 / embed_dim, generator=generator)
        if padding_idx is not None:
            self.embedding.weight.data[padding_idx] = 0
        self.feature_dropout = probability(name, "feature_dropout", feature_dropout)
        self.generator = generator
        self.dropout = nn.Dropout(probability(name, "dropout", dropout), generator=generator)
        if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
            raise ValueError(f"{name}: expected hidden >= 0 (0: no hidden layer), got {hidden!r}")
        self.hidden = nn.Linear(embed_dim, int(hidden), generator=generator) if hidden else None
        self.fc = nn.Linear(int(hidden) or embed_dim, self.num_classes, generator=generator)
        self.term_weights_fitted = self.weighting == "none"
        if self.weighting != "none":
            weights = Tensor(np.zeros(rows), dtype=self.embedding.weight.dtype, device=self.embedding.weight.device)
            self.register_buffer("term_weights", weights)

    def _features(self, ids: np.ndarray, lengths: np.ndarray, drop: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The host feature ids of token ids ``(B, T)``: tokens, hashed n-grams, binary, dropped."""
        pad = self.embedding.padding_idx or 0
        if self.ngrams > 1:
            ids, lengths = hashed_ngrams(ids, lengths, self.ngrams, self.buckets, self.vocab_size, pad)
        if self.binary:
            ids, lengths = unique_features(ids, lengths, pad)
        if drop:
            ids, lengths = drop_features(ids, lengths, self.feature_dropout, resolve(self.generator), pad)
        return ids, lengths

    def fit_term_weights(self, ids: Sequence[Any], labels: Any, batch_size: int = 512) -> None:
        """Set the ``weighting="nb"`` term weights from training texts (nothing to do without weighting).

        ``ids``: each text's token ids (1-D), ``labels (N,)`` their classes. Call it once before
        training, on the training texts only: the weights are part of the model, like its vocabulary.
        """
        if self.weighting == "none":
            return
        labels = _host(labels).astype(np.int64).reshape(-1)
        if len(ids) != len(labels):
            raise ValueError(f"BagOfEmbeddings.fit_term_weights: expected one label per text, got {len(ids)} "
                             f"texts and {len(labels)} labels")  # fmt: skip
        pad = self.embedding.padding_idx or 0

        def bags() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for start in range(0, len(ids), batch_size):
                rows = [_host(x).astype(np.int64).reshape(-1) for x in ids[start : start + batch_size]]
                padded, lengths, _ = pad_sequences(rows, padding_value=pad)
                yield (*self._features(padded, lengths), labels[start : start + batch_size])

        rows = self.vocab_size + self.buckets
        weights = naive_bayes_weights(bags(), rows, self.num_classes)
        if self.embedding.padding_idx is not None:
            weights[self.embedding.padding_idx] = 0.0
        buffer = self.term_weights
        buffer.data = Tensor(weights, dtype=buffer.dtype, device=buffer.device).data
        self.term_weights_fitted = True

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        result = super().load_state_dict(state_dict, strict)
        if "term_weights" in state_dict:
            self.term_weights_fitted = True
        return result

    def forward(self, ids: Tensor, lengths: Any = None) -> Tensor:
        if not self.term_weights_fitted:
            raise ValueError(
                "BagOfEmbeddings: weighting='nb' needs term weights: expected fit_term_weights(train_ids, labels) "
                "or load_state_dict(...) before the first call, got neither"
            )
        lengths = infer_lengths(ids, lengths, self.embedding.padding_idx)
        drop = self.training and self.feature_dropout > 0
        if self.ngrams > 1 or self.binary or drop:  # the features are host arrays built from the ids
            features, lengths = self._features(_host(ids), lengths, drop)
            ids = Tensor(features, device=self.fc.weight.device)
        weights = self.term_weights[ids] if self.weighting != "none" else None  # (B, T) constants
        x = self.dropout(masked_combine(self.embedding(ids), lengths, self.pooling, weights))  # (B, T, D) -> (B, D)
        if self.hidden is not None:
            x = self.dropout(F.relu(self.hidden(x)))  # (B, hidden)
        return self.fc(x)  # (B, num_classes)


class TextLSTM(nn.Module):
    """Embedding -> (bi)LSTM over the real tokens (``lengths``) -> pooling -> dropout -> linear.

    ``pooling`` picks the features from the last layer: ``"last"`` (default) its final hidden
    states, both directions concatenated when ``bidirectional``; ``"max"`` the max over the real
    steps of its outputs (InferSent's BiLSTM-max, Conneau et al. 2017); ``"mean"`` their mean.
    Shapes: ``ids (B, T)``, ``lengths (B,)`` -> ``(B, num_classes)``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        padding_idx: int | None = 0,
        generator: Generator | None = None,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        name = "TextLSTM"
        self.pooling = choice(name, "pooling", pooling, ("last", "max", "mean"))
        self.vocab_size = positive_int(name, "vocab_size", vocab_size)
        self.num_classes = positive_int(name, "num_classes", num_classes)
        embed_dim = positive_int(name, "embed_dim", embed_dim)
        hidden_size = positive_int(name, "hidden_size", hidden_size)
        num_layers = positive_int(name, "num_layers", num_layers)
        dropout = probability(name, "dropout", dropout)
        self.embedding = nn.Embedding(self.vocab_size, embed_dim, padding_idx=padding_idx, generator=generator)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bool(bidirectional),
            generator=generator,
        )
        self.dropout = nn.Dropout(dropout, generator=generator)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), self.num_classes, generator=generator)

    def features(self, x: Tensor, lengths: Any) -> Tensor:
        """The pooled LSTM features of embedded tokens ``x (B, T, E)`` -> ``(B, D*H)``."""
        output, (h_n, _) = self.lstm(x, lengths=lengths)  # output (B, T, D*H), zero past each length
        if self.pooling == "max":
            return masked_max(output, lengths)
        if self.pooling == "mean":
            return masked_mean(output, lengths)
        if self.lstm.bidirectional:  # h_n (L*D, B, H)
            return F.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H): forward and backward of the last layer
        return h_n[-1]  # (B, H)

    def forward(self, ids: Tensor, lengths: Any = None) -> Tensor:
        lengths = infer_lengths(ids, lengths, self.embedding.padding_idx)
        return self.fc(self.dropout(self.features(self.embedding(ids), lengths)))


class TextTransformer(nn.Module):
    """Embedding (scaled by sqrt(d_model)) + positions -> TransformerEncoder with a key padding mask
    -> pooling over the real tokens (``pooling``: ``"mean"``, the default, or ``"max"``) -> linear.

    ``positional`` is ``"sinusoidal"`` or ``"learned"``; sequences longer than ``max_len`` are an
    error (the task truncates to ``data.max_len``). Shapes: ``ids (B, T)``, ``lengths (B,)`` ->
    ``(B, num_classes)``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        max_len: int = 512,
        positional: str = "sinusoidal",
        norm_first: bool = True,
        padding_idx: int | None = 0,
        generator: Generator | None = None,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        name = "TextTransformer"
        self.pooling = choice(name, "pooling", pooling, ("mean", "max"))
        self.vocab_size = positive_int(name, "vocab_size", vocab_size)
        self.num_classes = positive_int(name, "num_classes", num_classes)
        self.d_model = positive_int(name, "d_model", d_model)
        nhead = positive_int(name, "nhead", nhead)
        if self.d_model % nhead:
            raise ValueError(
                f"TextTransformer: expected d_model divisible by nhead, got d_model={d_model}, nhead={nhead}"
            )
        max_len = positive_int(name, "max_len", max_len)
        dropout = probability(name, "dropout", dropout)
        choice(name, "positional", positional, ("sinusoidal", "learned"))
        self.embedding = nn.Embedding(self.vocab_size, self.d_model, padding_idx=padding_idx, generator=generator)
        nn.init.normal_(self.embedding.weight, 0.0, self.d_model**-0.5, generator=generator)
        if padding_idx is not None:
            self.embedding.weight.data[padding_idx] = 0
        if positional == "sinusoidal":
            self.positions: nn.Module = nn.SinusoidalPositionalEmbedding(max_len, self.d_model)
        else:
            self.positions = nn.LearnedPositionalEmbedding(max_len, self.d_model, generator=generator)
        layer = nn.TransformerEncoderLayer(
            self.d_model,
            nhead,
            dim_feedforward=positive_int(name, "dim_feedforward", dim_feedforward),
            dropout=dropout,
            batch_first=True,
            norm_first=bool(norm_first),
            generator=generator,
        )
        self.encoder = nn.TransformerEncoder(
            layer,
            positive_int(name, "num_layers", num_layers),
            norm=nn.LayerNorm(self.d_model) if norm_first else None,
        )
        self.dropout = nn.Dropout(dropout, generator=generator)
        self.fc = nn.Linear(self.d_model, self.num_classes, generator=generator)

    def forward(self, ids: Tensor, lengths: Any = None) -> Tensor:
        host = infer_lengths(ids, lengths, self.embedding.padding_idx)
        steps = ids.shape[1]
        padding = Tensor(np.arange(steps)[None, :] >= host[:, None], device=self.fc.weight.device)  # (B, T) True = pad
        x = self.positions(self.embedding(ids) * math.sqrt(self.d_model))  # (B, T, D)
        x = self.encoder(x, src_key_padding_mask=padding)  # (B, T, D)
        pooled = masked_max(x, host) if self.pooling == "max" else masked_mean(x, host)  # (B, D)
        return self.fc(self.dropout(pooled))  # (B, num_classes)
