"""Tokenizers that split text into string tokens: characters or regex words.

A tokenizer here only splits (``tokenize``) and joins (``detokenize``); ``Vocab`` maps
the tokens to ids. ``BPETokenizer`` (bpe.py) is the subword tokenizer that learns its
own table and maps text to ids directly.
"""

from __future__ import annotations

import re
from typing import Any


class CharTokenizer:
    """One token per Unicode code point; ``detokenize(tokenize(text)) == text``."""

    kind = "char"

    def tokenize(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer: expected str text, got {type(text).__name__}")
        return list(text)

    __call__ = tokenize

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def __repr__(self) -> str:
        return "CharTokenizer()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer)


class WordTokenizer:
    """Words and punctuation by a regular expression (default: runs of word characters, or one symbol).

    ``lower`` lower-cases the text first. Whitespace is dropped, so ``detokenize``
    (tokens joined by single spaces) is not the original text.
    """

    kind = "word"

    def __init__(self, pattern: str = r"\w+|[^\w\s]", lower: bool = True) -> None:
        try:
            self._regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"WordTokenizer: pattern: expected a valid regular expression, got {pattern!r} ({e})"
            ) from None
        if self._regex.groups:
            # re.findall would return the groups instead of the matches
            raise ValueError(f"WordTokenizer: pattern: expected no capturing groups (use (?:...)), got {pattern!r}")
        self.pattern = pattern
        self.lower = bool(lower)

    def tokenize(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer: expected str text, got {type(text).__name__}")
        return self._regex.findall(text.lower() if self.lower else text)

    __call__ = tokenize

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pattern": self.pattern, "lower": self.lower}

    def __repr__(self) -> str:
        return f"WordTokenizer(pattern={self.pattern!r}, lower={self.lower})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and (self.pattern, self.lower) == (other.pattern, other.lower)


def tokenizer_from_dict(state: dict[str, Any]) -> CharTokenizer | WordTokenizer:
    """Rebuild a ``CharTokenizer``/``WordTokenizer`` from its ``to_dict()``."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "char":
        return CharTokenizer()
    if kind == "word":
        return WordTokenizer(state.get("pattern", r"\w+|[^\w\s]"), state.get("lower", True))
    raise ValueError(f"tokenizer: key 'kind': expected 'char' or 'word', got {kind!r}")
