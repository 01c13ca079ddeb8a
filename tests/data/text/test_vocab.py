"""Tokenizers and ``Vocab``: splitting, frequency order with deterministic ties, unknowns, JSON round trips."""

from __future__ import annotations

import json

import pytest

from labkit.data.text import CharTokenizer, Vocab, WordTokenizer, tokenizer_from_dict
from labkit.plugins.registry import registry


def test_char_tokenizer_round_trip():
    tok = CharTokenizer()
    text = "naïve café\n\t日本 🙂"
    assert tok(text) == list(text)
    assert tok.detokenize(tok(text)) == text
    with pytest.raises(TypeError, match="expected str"):
        tok(b"bytes")


def test_word_tokenizer_pattern_and_lower():
    tok = WordTokenizer()
    assert tok("Hello, World! It's 2024.") == ["hello", ",", "world", "!", "it", "'", "s", "2024", "."]
    assert WordTokenizer(lower=False)("Hello World") == ["Hello", "World"]
    assert WordTokenizer(pattern=r"\S+")("a-b c") == ["a-b", "c"]
    with pytest.raises(ValueError, match="capturing groups"):
        WordTokenizer(pattern=r"(\w)+")
    with pytest.raises(ValueError, match="valid regular expression"):
        WordTokenizer(pattern="(")
    assert tokenizer_from_dict(tok.to_dict()) == tok
    assert tokenizer_from_dict(CharTokenizer().to_dict()) == CharTokenizer()


def test_tokenizers_are_registered():
    assert registry.get("tokenizer", "word") is WordTokenizer
    assert {"char", "word", "bpe"} <= set(registry.names("tokenizer"))


def test_build_orders_by_frequency_then_text():
    # counts: a 3, b 2, c 2, d 1 — b and c tie and go in code point order whatever the input order
    for texts in (["a a a b b c c d"], ["d c c b b a a a"], ["c b", "a d a", "b c a"]):
        vocab = Vocab.build(t.split() for t in texts)
        assert vocab.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c", "d"]
    assert vocab.counts == {"a": 3, "b": 2, "c": 2, "d": 1}
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)


def test_build_accepts_plain_tokens_and_custom_specials():
    vocab = Vocab.build(iter(["x", "y", "x"]), specials=("<unk>",))
    assert vocab.itos == ["<unk>", "x", "y"]
    assert vocab.pad_id is None


def test_min_freq_max_size_and_unknowns():
    tokens = "a a a b b c c d".split()
    vocab = Vocab.build([tokens], min_freq=2)
    assert "d" not in vocab and len(vocab) == 7
    assert vocab.encode(["a", "d", "zzz"]) == [4, vocab.unk_id, vocab.unk_id]
    small = Vocab.build([tokens], max_size=6)
    assert small.itos[4:] == ["a", "b"]  # c ties with b and goes after it, so it is cut
    with pytest.raises(ValueError, match="max_size: expected an int >= the 4 specials"):
        Vocab.build([tokens], max_size=3)
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build([tokens], min_freq=0)


def test_encode_decode_round_trip_and_errors():
    vocab = Vocab.build([list("hello world")])
    ids = vocab.encode(list("hello"))
    assert "".join(vocab.decode(ids)) == "hello"
    assert vocab.decode([0, *ids, 3], skip_specials=True) == list("hello")
    with pytest.raises(ValueError, match=r"expected ids in \[0, 12\), got 99"):
        vocab.decode([99])
    strict = Vocab(["a", "b"], unk_token=None)
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        strict.encode(["a", "z"])
    with pytest.raises(ValueError, match="unique tokens"):
        Vocab(["a", "a"])


def test_save_load_round_trip(tmp_path):
    vocab = Vocab.build([["ünï", "code", "code"]], specials=("<pad>", "<unk>"))
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded.unk_id == vocab.unk_id
    assert loaded.encode(["code", "???"]) == vocab.encode(["code", "???"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.update(format="other"), "key 'format'"),
        (lambda s: s.update(version=9), "key 'version'"),
        (lambda s: s.update(tokens="abc"), "key 'tokens': expected a list of strings, got str"),
        (lambda s: s.update(tokens=["a", 1]), "key 'tokens': expected a list of strings, got a list holding int"),
        (lambda s: s.update(tokens=["a", "a", "<unk>"]), "expected unique tokens"),
        (lambda s: s.update(unk_token="<nope>"), "key 'unk_token'"),
        (lambda s: s.update(specials=["<zzz>"]), r"specials \['<zzz>'\] are not among the tokens"),
    ],
)
def test_load_validates(tmp_path, edit, match):
    state = Vocab.build([["a", "b"]]).to_dict()
    edit(state)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=match) as info:
        Vocab.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_non_json(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unparsable"):
        Vocab.load(path)
