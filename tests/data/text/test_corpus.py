"""Language-model windows and the stateful TBPTT layout."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.data.text import (
    BPETokenizer,
    LanguageModelCorpus,
    Vocab,
    WordTokenizer,
    char_vocab,
    encode_chars,
    tbptt_batches,
)


def test_char_windows_are_shifted_by_one():
    text = "abcdefghij" * 3
    corpus = LanguageModelCorpus(text, seq_len=4)
    assert len(corpus.ids) == 30 and len(corpus) == (30 - 1 - 4) // 4 + 1 == 7
    for i in range(len(corpus)):
        x, y = corpus[i]
        assert x.dtype == np.int64 and x.shape == y.shape == (4,)
        assert np.array_equal(x[1:], y[:-1])
        assert corpus.decode(x) == text[4 * i : 4 * i + 4]
        assert corpus.decode(y) == text[4 * i + 1 : 4 * i + 5]
    assert np.array_equal(corpus[-1][0], corpus[6][0])
    with pytest.raises(IndexError):
        corpus[7]
    assert len(LanguageModelCorpus(text, seq_len=4, stride=1)) == 26


def test_vocab_is_shared_and_unseen_characters_map_to_unk():
    train = LanguageModelCorpus("aaabbc", seq_len=2)
    assert train.vocab.itos == ["<unk>", "a", "b", "c"]
    valid = LanguageModelCorpus("abzz", seq_len=2, vocab=train.vocab)
    assert valid.ids.tolist() == [1, 2, 0, 0]


def test_encode_chars_matches_the_vocab():
    text = "héllo wörld 🙂 héllo"
    vocab = char_vocab(text)
    assert encode_chars(text, vocab).tolist() == vocab.encode(list(text))
    strict = Vocab(["a"], unk_token=None)
    with pytest.raises(ValueError, match="'b' is not in the vocabulary"):
        encode_chars("ab", strict)


def test_files_word_and_bpe_tokenizers(tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("The dog sat.\n", encoding="utf-8")
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    chars = LanguageModelCorpus(files, seq_len=5)
    assert chars.decode(chars.ids) == "The cat sat.\nThe dog sat.\n" and chars.files == files
    words = LanguageModelCorpus(files, WordTokenizer(), seq_len=3)
    assert words.vocab.itos[:4] == ["<unk>", ".", "sat", "the"]
    assert words.decode(words[0][0]) == "the cat sat"
    bpe = BPETokenizer().train("The cat sat. The dog sat.", 270)
    sub = LanguageModelCorpus(tmp_path / "a.txt", bpe, seq_len=2)
    assert sub.vocab is None and sub.vocab_size == bpe.vocab_size
    assert bpe.decode(sub.ids) == "The cat sat.\n"


def test_corpus_errors(tmp_path):
    with pytest.raises(ValueError, match="expected at least seq_len \\+ 1 = 11 tokens, got 3"):
        LanguageModelCorpus("abc", seq_len=10)
    with pytest.raises(ValueError, match="seq_len: expected an int >= 1"):
        LanguageModelCorpus("abc", seq_len=0)
    with pytest.raises(TypeError, match="source: expected text"):
        LanguageModelCorpus(42, seq_len=1)
    with pytest.raises(TypeError, match="tokenize\\(\\) or encode\\(\\)"):
        LanguageModelCorpus("abcdef", tokenizer=object(), seq_len=1)
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        LanguageModelCorpus(tmp_path / "missing.txt", seq_len=1)


def test_tbptt_rows_are_contiguous_across_batches():
    ids = np.arange(103)
    batches = tbptt_batches(ids, batch_size=4, seq_len=7)
    # 103 // 4 = 25 columns per row; inputs cover columns 0..23 in windows of 7 -> 4 batches, the last of 3
    assert len(batches) == 4 and batches.rows.shape == (4, 25)
    xs, ys = zip(*batches)
    assert [x.shape for x in xs] == [(4, 7), (4, 7), (4, 7), (4, 3)]
    row_stream = np.concatenate(xs, axis=1)  # (B, 24): each row is one contiguous piece of the stream
    for b in range(4):
        assert row_stream[b].tolist() == list(range(25 * b, 25 * b + 24))
    for x, y in zip(xs, ys):
        assert np.array_equal(y, x + 1)
    again = [x for x, _ in batches]  # re-iterable: each epoch starts over
    assert all(np.array_equal(a, b) for a, b in zip(again, xs))


def test_tbptt_time_major_and_drop_last():
    ids = np.arange(103)
    tm = tbptt_batches(ids, batch_size=4, seq_len=7, batch_first=False, drop_last=True)
    assert len(tm) == 3
    x, y = tm[0]
    assert x.shape == y.shape == (7, 4) and x[:, 1].tolist() == list(range(25, 32))
    assert y[:, 1].tolist() == list(range(26, 33))
    with pytest.raises(ValueError, match="at least 2 \\* batch_size = 8 tokens, got 5"):
        tbptt_batches(np.arange(5), batch_size=4, seq_len=2)
    with pytest.raises(ValueError, match="1-D integer sequence"):
        tbptt_batches(np.zeros((3, 3)), 1, 1)
    with pytest.raises(ValueError, match="seq_len: expected an int >= 1"):
        tbptt_batches(np.arange(10), 2, 0)
