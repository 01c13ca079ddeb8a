"""Language-model data: one token stream cut into (input, target) windows, and the TBPTT layout.

``LanguageModelCorpus`` serves independent windows (shuffle them freely);
``tbptt_batches`` serves the stateful layout, where row ``b`` of batch ``k + 1``
continues row ``b`` of batch ``k`` so a recurrent model can carry its hidden state.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data.text.datasets import read_text_file
from labkit.data.text.tokenizers import CharTokenizer
from labkit.data.text.vocab import Vocab

PathLike = str | os.PathLike[str]


def read_corpus(source: str | PathLike | Sequence[PathLike]) -> tuple[str, list[Path]]:
    """``(text, files)``: a ``str`` is the text itself; a path or a list of paths is read (UTF-8) and joined.

    Each file is ended with a newline before the next one starts.
    """
    if isinstance(source, str):
        return source, []
    if isinstance(source, os.PathLike):
        files = [Path(source)]
    elif isinstance(source, Sequence) and not isinstance(source, bytes):
        files = [Path(p) for p in source]
        if not files:
            raise ValueError("LanguageModelCorpus: expected at least one file, got an empty list")
    else:
        raise TypeError(
            f"LanguageModelCorpus: source: expected text (str), a path or a list of paths, got {type(source).__name__}"
        )
    parts = []
    for f in files:
        text = read_text_file(f)
        parts.append(text if text.endswith("\n") or not text else text + "\n")
    return "".join(parts), files


def char_vocab(text: str, min_freq: int = 1, specials: Sequence[str] = ("<unk>",)) -> Vocab:
    """A character vocab of ``text`` (specials first, then characters by falling count)."""
    return Vocab.from_counts(Counter(text), min_freq=min_freq, specials=specials, unk_token="<unk>")


def encode_chars(text: str, vocab: Vocab) -> np.ndarray:
    """Character ids of ``text`` as int64 (vectorised: one lookup per distinct code point)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    singles = [(ord(t), i) for i, t in enumerate(vocab.itos) if len(t) == 1]
    table_codes = np.array(sorted(c for c, _ in singles), dtype=np.uint32)
    table_ids = np.array([i for _, i in sorted(singles)], dtype=np.int64)
    pos = np.searchsorted(table_codes, codes).clip(0, max(len(table_codes) - 1, 0))
    found = table_codes[pos] == codes if len(table_codes) else np.zeros(len(codes), bool)
    if not found.all() and vocab.unk_id is None:
        bad = chr(int(codes[np.flatnonzero(~found)[0]]))
        raise ValueError(f"encode_chars: character {bad!r} is not in the vocabulary and it has no unk token")
    unk = vocab.unk_id if vocab.unk_id is not None else -1
    return np.where(found, table_ids[pos] if len(table_ids) else unk, unk).astype(np.int64)


class LanguageModelCorpus:
    """A token stream cut into windows: ``corpus[i] -> (input, target)``, both int64 ``(seq_len,)``.

    ``target`` is ``input`` shifted by one token. Windows start every ``stride`` tokens
    (default ``seq_len``: no overlap). ``source`` is the text (``str``), a path, or a list
    of paths. ``tokenizer`` is either one that maps text to ids itself (``encode``, e.g.
    ``BPETokenizer``) or one that splits text into tokens (``CharTokenizer``, ``WordTokenizer``),
    whose ids then come from ``vocab`` (built from this text when not given: pass the
    training corpus's ``vocab`` to its validation and test corpora).
    """

    def __init__(
        self,
        source: str | PathLike | Sequence[PathLike],
        tokenizer: Any = None,
        seq_len: int = 128,
        vocab: Vocab | None = None,
        stride: int | None = None,
        min_freq: int = 1,
    ) -> None:
        if not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"LanguageModelCorpus: seq_len: expected an int >= 1, got {seq_len!r}")
        stride = seq_len if stride is None else stride
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"LanguageModelCorpus: stride: expected an int >= 1, got {stride!r}")
        text, self.files = read_corpus(source)
        self.tokenizer = tokenizer if tokenizer is not None else CharTokenizer()
        self.seq_len, self.stride = seq_len, stride
        self.n_chars = len(text)
        if isinstance(self.tokenizer, CharTokenizer):
            self.vocab = vocab if vocab is not None else char_vocab(text, min_freq)
            self.ids = encode_chars(text, self.vocab)
        elif hasattr(self.tokenizer, "tokenize"):
            tokens = self.tokenizer.tokenize(text)
            self.vocab = vocab if vocab is not None else Vocab.build([tokens], min_freq=min_freq, specials=("<unk>",))
            self.ids = np.asarray(self.vocab.encode(tokens), dtype=np.int64)
        elif hasattr(self.tokenizer, "encode"):
            self.vocab = None
            self.ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        else:
            raise TypeError(
                "LanguageModelCorpus: tokenizer: expected an object with tokenize() or encode(), "
                f"got {type(self.tokenizer).__name__}"
            )
        if len(self.ids) < seq_len + 1:
            raise ValueError(
                f"LanguageModelCorpus: expected at least seq_len + 1 = {seq_len + 1} tokens, got {len(self.ids)}"
            )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) if self.vocab is not None else len(self.tokenizer)

    def __len__(self) -> int:
        return (len(self.ids) - 1 - self.seq_len) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"LanguageModelCorpus: index {index} out of range for {n} windows")
        start = index * self.stride
        window = self.ids[start : start + self.seq_len + 1]
        return window[:-1], window[1:]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of token ids (characters joined; words joined by spaces; BPE decoded)."""
        if self.vocab is None:
            return self.tokenizer.decode(ids)
        return self.tokenizer.detokenize(self.vocab.decode(ids))

    def __repr__(self) -> str:
        return f"LanguageModelCorpus(tokens={len(self.ids)}, vocab={self.vocab_size}, seq_len={self.seq_len}, windows={len(self)})"


class TBPTTBatches:
    """The stateful (truncated-BPTT) batches of one token stream; iterate it once per epoch.

    The stream is trimmed to ``batch_size * n`` tokens and laid out as ``batch_size``
    contiguous rows of ``n`` tokens. Batch ``k`` holds columns ``[k*seq_len, (k+1)*seq_len)``
    as input and the same shifted by one as target, so row ``b`` of batch ``k + 1`` continues
    row ``b`` of batch ``k``. The last batch is shorter unless ``drop_last``.
    Shapes: ``(B, T)`` int64, or ``(T, B)`` when ``batch_first=False``.
    """

    def __init__(
        self,
        token_ids: Sequence[int] | np.ndarray,
        batch_size: int,
        seq_len: int,
        batch_first: bool = True,
        drop_last: bool = False,
    ) -> None:
        ids = np.asarray(token_ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"tbptt_batches: token_ids: expected a 1-D integer sequence, got {ids.dtype} of shape {ids.shape}"
            )
        for key, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"tbptt_batches: {key}: expected an int >= 1, got {v!r}")
        n = len(ids) // batch_size
        if n < 2:
            raise ValueError(
                f"tbptt_batches: expected at least 2 * batch_size = {2 * batch_size} tokens, got {len(ids)}"
            )
        self.rows = ids[: batch_size * n].astype(np.int64).reshape(batch_size, n)  # (B, n)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.batch_first, self.drop_last = batch_first, drop_last
        starts = range(0, n - 1, seq_len)
        self.starts = [s for s in starts if not drop_last or s + seq_len <= n - 1]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        start = self.starts[k]
        stop = min(start + self.seq_len, self.rows.shape[1] - 1)
        x = self.rows[:, start:stop]  # (B, T)
        y = self.rows[:, start + 1 : stop + 1]
        if not self.batch_first:
            x, y = x.T, y.T  # (T, B)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"TBPTTBatches(batches={len(self)}, batch_size={self.batch_size}, seq_len={self.seq_len})"


def tbptt_batches(
    token_ids: Sequence[int] | np.ndarray,
    batch_size: int,
    seq_len: int,
    batch_first: bool = True,
    drop_last: bool = False,
) -> TBPTTBatches:
    """The stateful layout of ``token_ids`` (see ``TBPTTBatches``): re-iterable, ``len()`` batches per epoch."""
    return TBPTTBatches(token_ids, batch_size, seq_len, batch_first, drop_last)
