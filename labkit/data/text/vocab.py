"""``Vocab``: a token <-> id table built from token counts, saved as JSON.

Ids are assigned specials first (in the order given), then tokens by falling
frequency; tokens with equal counts are ordered by their text (code point order),
so the same counts give the same ids on every machine whatever order they came in.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
_FORMAT = "labkit.vocab"
_VERSION = 1


class Vocab:
    """A fixed table of tokens (``itos``) and its inverse (``stoi``).

    ``unk_token`` (when it is one of the tokens) is what unknown tokens encode to;
    without it, encoding an unknown token raises ``ValueError``.
    """

    def __init__(self, tokens: Sequence[str], unk_token: str | None = "<unk>", specials: Sequence[str] = ()) -> None:
        tokens = list(tokens)
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"Vocab: token {i}: expected str, got {type(token).__name__}")
        stoi: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if token in stoi:
                raise ValueError(f"Vocab: expected unique tokens, got {token!r} at ids {stoi[token]} and {i}")
            stoi[token] = i
        missing = [s for s in specials if s not in stoi]
        if missing:
            raise ValueError(f"Vocab: specials {missing} are not among the tokens")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = stoi
        self.specials: tuple[str, ...] = tuple(specials)
        self.unk_token = unk_token if unk_token in stoi else None
        self.unk_id: int | None = stoi[unk_token] if self.unk_token is not None else None
        self.counts: dict[str, int] = {}  # token counts seen by ``build`` (not saved)

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        token_iter: Iterable[str | Iterable[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        unk_token: str | None = "<unk>",
    ) -> Vocab:
        """Count tokens and keep those seen at least ``min_freq`` times.

        ``token_iter`` yields tokens (``str``) or sequences of tokens (one per text).
        ``max_size`` bounds the whole table, specials included; the least frequent
        tokens are dropped first (ties: the later token in code point order goes).
        """
        counts: Counter[str] = Counter()
        for item in token_iter:
            if isinstance(item, str):
                counts[item] += 1
            else:
                counts.update(item)
        return cls.from_counts(counts, min_freq, max_size, specials, unk_token)

    @classmethod
    def from_counts(
        cls,
        counts: dict[str, int],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        unk_token: str | None = "<unk>",
    ) -> Vocab:
        """Like ``build``, from token counts already made (e.g. ``collections.Counter(text)`` for characters)."""
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab.build: min_freq: expected an int >= 1, got {min_freq!r}")
        specials = tuple(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"Vocab.build: specials: expected unique tokens, got {specials}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(specials)):
            raise ValueError(
                f"Vocab.build: max_size: expected an int >= the {len(specials)} specials, got {max_size!r}"
            )
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in specials), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - len(specials)]
        vocab = cls([*specials, *kept], unk_token=unk_token, specials=specials)
        vocab.counts = {t: int(counts[t]) for t in kept}
        return vocab

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.index(token)

    def __iter__(self):
        return iter(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.itos, self.unk_token, self.specials) == (
            other.itos,
            other.unk_token,
            other.specials,
        )

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)}, unk_token={self.unk_token!r})"

    def index(self, token: str) -> int:
        """The id of ``token``; unknown tokens give ``unk_id`` (or ``ValueError`` without an unk token)."""
        i = self.stoi.get(token)
        if i is not None:
            return i
        if self.unk_id is None:
            raise ValueError(f"Vocab: token {token!r} is not in the vocabulary and it has no unk token")
        return self.unk_id

    def id_of(self, token: str) -> int | None:
        """The id of ``token`` if present, else ``None`` (e.g. ``vocab.id_of("<pad>")``)."""
        return self.stoi.get(token)

    @property
    def pad_id(self) -> int | None:
        return self.stoi.get("<pad>")

    @property
    def bos_id(self) -> int | None:
        return self.stoi.get("<bos>")

    @property
    def eos_id(self) -> int | None:
        return self.stoi.get("<eos>")

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids, one per token; unknown tokens map to ``unk_id``."""
        tokens = tokens if isinstance(tokens, Sequence) else list(tokens)
        get, unk = self.stoi.get, self.unk_id
        ids = [get(t, unk) for t in tokens]
        if unk is None and None in ids:
            bad = tokens[ids.index(None)]
            raise ValueError(f"Vocab.encode: token {bad!r} is not in the vocabulary and it has no unk token")
        return ids  # type: ignore[return-value]

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Tokens for ``ids`` (ints in ``[0, len(vocab))``); ``skip_specials`` drops the special tokens."""
        out = []
        n = len(self.itos)
        specials = set(self.specials) if skip_specials else ()
        for i in ids:
            k = int(i)
            if not 0 <= k < n:
                raise ValueError(f"Vocab.decode: expected ids in [0, {n}), got {k}")
            token = self.itos[k]
            if token not in specials:
                out.append(token)
        return out

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "tokens": list(self.itos),
            "specials": list(self.specials),
            "unk_token": self.unk_token,
        }

    @classmethod
    def from_dict(cls, state: Any, source: str = "Vocab.from_dict") -> Vocab:
        """Rebuild a vocab from ``to_dict()``; every key is checked (``source`` names the file in errors)."""
        if not isinstance(state, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(state).__name__}")
        if state.get("format") != _FORMAT:
            raise ValueError(f"{source}: key 'format': expected {_FORMAT!r}, got {state.get('format')!r}")
        if state.get("version") != _VERSION:
            raise ValueError(f"{source}: key 'version': expected {_VERSION}, got {state.get('version')!r}")
        tokens = state.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{source}: key 'tokens': expected a list of strings, got {_describe(tokens)}")
        specials = state.get("specials", [])
        if not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
            raise ValueError(f"{source}: key 'specials': expected a list of strings, got {_describe(specials)}")
        unk = state.get("unk_token")
        if unk is not None and (not isinstance(unk, str) or unk not in tokens):
            raise ValueError(f"{source}: key 'unk_token': expected null or one of the tokens, got {unk!r}")
        try:
            return cls(tokens, unk_token=unk, specials=specials)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{source}: {e}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocab as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Read a vocab written by ``save``; a malformed file raises ``ValueError`` naming it and the key."""
        path = Path(path)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: expected a labkit vocab JSON file, got unparsable content ({e})") from None
        return cls.from_dict(state, source=str(path))


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        return f"a list holding {type(bad).__name__} {bad!r}"
    return type(value).__name__
