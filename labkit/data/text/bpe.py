"""``BPETokenizer``: byte-level byte-pair encoding with a small in-house trainer.

Text is first cut into chunks by a regular expression (words with their leading
space, digit runs, punctuation runs, whitespace), then each chunk is UTF-8 bytes;
merges never cross a chunk boundary. Training repeatedly merges the most frequent
adjacent pair of tokens (counted over all chunks, weighted by how often each chunk
occurs). Ties go to the pair with the smallest ids, left id first: bytes in byte
order, older merges before newer ones. So the same texts give the same merges on
every machine.

Ids: the specials first (``<pad>``, ``<bos>``, ``<eos>`` by default), then the 256
bytes, then one id per merge in the order learned. Any text encodes (every byte has
an id) and ``decode(encode(text)) == text``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: GPT-2's split, written for Python's ``re``: contractions, words, digit runs, other symbol runs, whitespace
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
_FORMAT = "labkit.bpe"
_VERSION = 1
_CACHE_LIMIT = 200_000


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of ``pair`` (left to right) by ``new_id``."""
    out: list[int] = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE: ``train(texts, vocab_size)``, then ``encode(text) -> ids`` and ``decode(ids) -> text``."""

    kind = "bpe"

    def __init__(self, specials: Sequence[str] = ("<pad>", "<bos>", "<eos>"), pattern: str = SPLIT_PATTERN) -> None:
        specials = tuple(specials)
        if len(set(specials)) != len(specials) or not all(isinstance(s, str) for s in specials):
            raise ValueError(f"BPETokenizer: specials: expected unique strings, got {specials}")
        try:
            self._regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"BPETokenizer: pattern: expected a valid regular expression, got {pattern!r} ({e})"
            ) from None
        self.specials = specials
        self.pattern = pattern
        self.merges: list[tuple[int, int]] = []
        self._rebuild()

    # ------------------------------------------------------------------ tables

    @property
    def offset(self) -> int:
        """The id of byte 0 (the number of specials)."""
        return len(self.specials)

    def _rebuild(self) -> None:
        off = self.offset
        self._bytes: list[bytes] = [b""] * off + [bytes([b]) for b in range(256)]
        self._ranks: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            self._ranks[(a, b)] = rank
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return self.offset + 256 + len(self.merges)

    def __len__(self) -> int:
        return self.vocab_size

    def special_id(self, token: str) -> int | None:
        return self.specials.index(token) if token in self.specials else None

    @property
    def pad_id(self) -> int | None:
        return self.special_id("<pad>")

    @property
    def bos_id(self) -> int | None:
        return self.special_id("<bos>")

    @property
    def eos_id(self) -> int | None:
        return self.special_id("<eos>")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a non-special id stands for (``b""`` for a special)."""
        self._check_id(token_id)
        return self._bytes[token_id]

    def token_text(self, token_id: int) -> str:
        """A readable form of one token: the special's name, or its bytes as text (undecodable bytes escaped)."""
        self._check_id(token_id)
        if token_id < self.offset:
            return self.specials[token_id]
        return self._bytes[token_id].decode("utf-8", errors="backslashreplace")

    def merges_as_text(self) -> list[tuple[str, str]]:
        """The learned merges as ``(left, right)`` token texts, in the order learned."""
        return [(self.token_text(a), self.token_text(b)) for a, b in self.merges]

    def _check_id(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"BPETokenizer: expected ids in [0, {self.vocab_size}), got {token_id}")

    # ------------------------------------------------------------------ training

    def train(self, texts: str | Iterable[str], vocab_size: int, min_frequency: int = 2) -> BPETokenizer:
        """Learn ``vocab_size - len(specials) - 256`` merges from ``texts`` (replacing any learned before).

        Stops early when no pair occurs ``min_frequency`` times; ``vocab_size`` is then smaller.
        """
        n_merges = vocab_size - self.offset - 256 if isinstance(vocab_size, int) else -1
        if n_merges < 0:
            raise ValueError(
                f"BPETokenizer.train: vocab_size: expected an int >= {self.offset + 256} "
                f"({self.offset} specials + 256 bytes), got {vocab_size!r}"
            )
        if isinstance(texts, str):
            texts = [texts]
        chunk_counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"BPETokenizer.train: text {i}: expected str, got {type(text).__name__}")
            chunk_counts.update(self._regex.findall(text))
        off = self.offset
        words = [[off + b for b in chunk.encode("utf-8")] for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words that (may) hold it
        for wi, word in enumerate(words):
            for pair in itertools.pairwise(word):
                pair_counts[pair] += freqs[wi]
                where[pair].add(wi)
        # max-heap on (count, then smallest pair); stale entries are skipped when popped
        heap = [(-c, p) for p, c in pair_counts.items()]
        heapq.heapify(heap)

        self.merges = []
        while len(self.merges) < n_merges and heap:
            neg_count, pair = heapq.heappop(heap)
            count = pair_counts.get(pair, 0)
            if count != -neg_count:
                continue
            if count < min_frequency:
                break
            new_id = off + 256 + len(self.merges)
            self.merges.append(pair)
            delta: dict[tuple[int, int], int] = defaultdict(int)
            for wi in where.pop(pair):
                word, f = words[wi], freqs[wi]
                merged = _merge(word, pair, new_id)
                if len(merged) == len(word):
                    continue
                for q in itertools.pairwise(word):
                    delta[q] -= f
                for q in itertools.pairwise(merged):
                    delta[q] += f
                    where[q].add(wi)
                words[wi] = merged
            for q, d in delta.items():
                if d == 0:
                    continue
                c = pair_counts[q] + d
                if c > 0:
                    pair_counts[q] = c
                    heapq.heappush(heap, (-c, q))
                else:
                    del pair_counts[q]
        self._rebuild()
        return self

    # ------------------------------------------------------------------ encode / decode

    def _encode_chunk(self, chunk: str) -> list[int]:
        off, ranks = self.offset, self._ranks
        ids = [off + b for b in chunk.encode("utf-8")]
        missing = len(ranks)
        while len(ids) >= 2:
            # the earliest-learned merge present: applying merges in learned order reproduces training
            best = min(itertools.pairwise(ids), key=lambda p: ranks.get(p, missing))
            rank = ranks.get(best)
            if rank is None:
                break
            ids = _merge(ids, best, off + 256 + rank)
        return ids

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text`` (special ids only where ``add_bos``/``add_eos`` ask for them)."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: expected str text, got {type(text).__name__}")
        ids: list[int] = []
        if add_bos:
            ids.append(self._require_special("<bos>"))
        cache = self._cache
        for chunk in self._regex.findall(text):
            piece = cache.get(chunk)
            if piece is None:
                piece = self._encode_chunk(chunk)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[chunk] = piece
            ids.extend(piece)
        if add_eos:
            ids.append(self._require_special("<eos>"))
        return ids

    __call__ = encode

    def _require_special(self, token: str) -> int:
        i = self.special_id(token)
        if i is None:
            raise ValueError(f"BPETokenizer: expected {token!r} among the specials {list(self.specials)}")
        return i

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; special ids are dropped. Bytes that are not valid UTF-8 (a cut sequence) become U+FFFD."""
        table, n = self._bytes, self.vocab_size
        parts = []
        for i in ids:
            k = int(i)
            if not 0 <= k < n:
                raise ValueError(f"BPETokenizer.decode: expected ids in [0, {n}), got {k}")
            parts.append(table[k])
        return b"".join(parts).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "specials": list(self.specials),
            "pattern": self.pattern,
            "merges": [list(p) for p in self.merges],
        }

    @classmethod
    def from_dict(cls, state: Any, source: str = "BPETokenizer.from_dict") -> BPETokenizer:
        """Rebuild from ``to_dict()``; each key and merge is checked (``source`` names the file in errors)."""
        if not isinstance(state, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(state).__name__}")
        for key, want in (("format", _FORMAT), ("version", _VERSION)):
            if state.get(key) != want:
                raise ValueError(f"{source}: key {key!r}: expected {want!r}, got {state.get(key)!r}")
        specials, pattern, merges = state.get("specials"), state.get("pattern"), state.get("merges")
        if not isinstance(specials, list) or not all(isinstance(s, str) for s in specials):
            raise ValueError(f"{source}: key 'specials': expected a list of strings, got {specials!r}")
        if not isinstance(pattern, str):
            raise ValueError(f"{source}: key 'pattern': expected a string, got {type(pattern).__name__}")
        if not isinstance(merges, list):
            raise ValueError(
                f"{source}: key 'merges': expected a list of [left, right] id pairs, got {type(merges).__name__}"
            )
        try:
            tok = cls(specials, pattern)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
        first = tok.offset
        for rank, pair in enumerate(merges):
            limit = first + 256 + rank  # a merge may only use bytes and earlier merges
            ok = (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(i, int) and not isinstance(i, bool) and first <= i < limit for i in pair)
            )
            if not ok:
                raise ValueError(
                    f"{source}: key 'merges' item {rank}: expected two ids in [{first}, {limit}), got {pair!r}"
                )
        tok.merges = [(a, b) for a, b in merges]
        if len(set(tok.merges)) != len(tok.merges):
            raise ValueError(f"{source}: key 'merges': expected each pair once, got a repeated pair")
        tok._rebuild()
        return tok

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        path = Path(path)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: expected a labkit BPE JSON file, got unparsable content ({e})") from None
        return cls.from_dict(state, source=str(path))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, specials={list(self.specials)})"
