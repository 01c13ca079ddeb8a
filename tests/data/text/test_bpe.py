"""Byte-level BPE: the merge sequence of a hand-worked corpus, round trips, JSON save/load."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from labkit.data.text import BPETokenizer
from labkit.data.text.bpe import SPLIT_PATTERN

# Words with counts: hug 10, pug 5, pun 12, bun 4, hugs 5 (the Hugging Face course example).
HUG = "\n".join(["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5)


def test_merges_match_the_hand_worked_sequence():
    # Pair counts, worked by hand (each word weighted by its count):
    #   u g 20, u n 16, p u 17, h u 15, g s 5, b u 4      -> merge (u, g)
    #   u n 16, h ug 15, p u 12, p ug 5, ug s 5, b u 4    -> merge (u, n)
    #   h ug 15, p un 12, p ug 5, ug s 5, b un 4          -> merge (h, ug)
    #   p un 12, p ug 5, hug s 5, b un 4                   -> merge (p, un)
    #   p ug 5 ties hug s 5: (p=112, ug=256) < (hug=258, s=115) -> merge (p, ug), then (hug, s)
    #   b un 4                                              -> merge (b, un); no pair is left
    tok = BPETokenizer(specials=()).train(HUG, vocab_size=1000)
    assert tok.merges_as_text() == [
        ("u", "g"),
        ("u", "n"),
        ("h", "ug"),
        ("p", "un"),
        ("p", "ug"),
        ("hug", "s"),
        ("b", "un"),
    ]
    assert tok.vocab_size == 256 + 7
    assert tok.encode("hug") == [258]
    assert tok.encode("hugs bun") == [261, ord(" "), 262]  # " bun" never occurred: the space stays a byte


def test_vocab_size_caps_the_merges_and_min_frequency_stops_early():
    tok = BPETokenizer(specials=()).train(HUG, vocab_size=256 + 2)
    assert tok.merges_as_text() == [("u", "g"), ("u", "n")]
    tok = BPETokenizer(specials=()).train(HUG, vocab_size=1000, min_frequency=6)
    assert tok.merges_as_text() == [("u", "g"), ("u", "n"), ("h", "ug"), ("p", "un")]


def test_training_does_not_depend_on_text_order():
    lines = HUG.split("\n")
    a = BPETokenizer().train(lines, 300)
    b = BPETokenizer().train(list(reversed(lines)), 300)
    assert a.merges == b.merges


def test_overlapping_pairs_merge_left_to_right():
    tok = BPETokenizer(specials=()).train("aaab\naaab\naaab", vocab_size=257)
    assert tok.merges_as_text() == [("a", "a")]
    assert [tok.token_text(i) for i in tok.encode("aaa")] == ["aa", "a"]


def _stdlib_text() -> str:
    return (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text(encoding="utf-8")


def test_round_trip_on_real_text_and_unseen_characters():
    text = _stdlib_text()
    tok = BPETokenizer().train(text, vocab_size=3 + 256 + 300)
    assert tok.vocab_size == 559
    ids = tok.encode(text)
    assert len(ids) < len(text.encode()) / 2.5  # 300 merges compress Python source well
    assert tok.decode(ids) == text
    odd = "naïve café 日本語 🙂\t\r\n  x__y  \n\n '' 's 3.14"
    assert tok.decode(tok.encode(odd)) == odd
    assert tok.decode(tok.encode(odd, add_bos=True, add_eos=True)) == odd
    ids = tok.encode("hi", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id == 1 and ids[-1] == tok.eos_id == 2


def test_split_pattern_covers_every_character():
    import re

    text = "a_b\u00bd²\u0660 \x00\x7f  \n\t x—y 🙂's"
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


def test_save_load_round_trip(tmp_path):
    tok = BPETokenizer().train(_stdlib_text(), vocab_size=400)
    path = tmp_path / "bpe.json"
    tok.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.specials == tok.specials
    sample = "def wrap(text, width=70):"
    assert loaded.encode(sample) == tok.encode(sample)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.update(format="x"), "key 'format'"),
        (lambda s: s.update(merges={}), "key 'merges': expected a list"),
        (lambda s: s["merges"].append([3, 10_000]), "key 'merges' item 2: expected two ids"),
        (lambda s: s["merges"].append([0, 100]), "key 'merges' item 2: expected two ids in \\[3, 261\\)"),
        (lambda s: s["merges"].append(["a", "b"]), "item 2"),
        (lambda s: s["merges"].append(list(s["merges"][0])), "repeated pair"),
        (lambda s: s.update(specials=[1]), "key 'specials'"),
    ],
)
def test_load_validates(tmp_path, edit, match):
    state = BPETokenizer().train("abab abab cdcd cdcd", vocab_size=261).to_dict()
    assert len(state["merges"]) == 2
    edit(state)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=match) as info:
        BPETokenizer.load(path)
    assert str(path) in str(info.value)


def test_argument_errors():
    with pytest.raises(ValueError, match=r"vocab_size: expected an int >= 259"):
        BPETokenizer().train("abc", vocab_size=100)
    with pytest.raises(TypeError, match="text 1: expected str"):
        BPETokenizer().train(["ok", 3], vocab_size=300)
    tok = BPETokenizer(specials=())
    with pytest.raises(ValueError, match="expected '<bos>' among the specials"):
        tok.encode("x", add_bos=True)
    with pytest.raises(ValueError, match=r"expected ids in \[0, 256\)"):
        tok.decode([256])
