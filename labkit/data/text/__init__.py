"""Text data: tokenizers (characters, words, byte-level BPE), ``Vocab``, classification datasets,
language-model corpora and the TBPTT batch layout. The named datasets live in ``builtin``."""

from labkit.data.text.bpe import BPETokenizer
from labkit.data.text.corpus import (
    LanguageModelCorpus,
    TBPTTBatches,
    char_vocab,
    encode_chars,
    read_corpus,
    tbptt_batches,
)
from labkit.data.text.datasets import (
    FortuneFile,
    SplitView,
    TextCSV,
    TextFolder,
    make_splits,
    parse_fortunes,
    read_text_file,
    split_indices,
)
from labkit.data.text.tokenizers import CharTokenizer, WordTokenizer, tokenizer_from_dict
from labkit.data.text.vocab import DEFAULT_SPECIALS, Vocab
from labkit.plugins.registry import registry

for _name, _cls in (("char", CharTokenizer), ("word", WordTokenizer), ("bpe", BPETokenizer)):
    registry.register("tokenizer", _name, _cls)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "DEFAULT_SPECIALS",
    "FortuneFile",
    "LanguageModelCorpus",
    "SplitView",
    "TBPTTBatches",
    "TextCSV",
    "TextFolder",
    "Vocab",
    "WordTokenizer",
    "char_vocab",
    "encode_chars",
    "make_splits",
    "parse_fortunes",
    "read_corpus",
    "read_text_file",
    "split_indices",
    "tbptt_batches",
    "tokenizer_from_dict",
]
