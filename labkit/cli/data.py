"""``labkit data list | info NAME | preview NAME --out FILE.png | get NAME``: the named-dataset catalog.

``list`` shows every registered dataset, whether it is present and where (or where it
was looked for); ``info`` its sizes, classes and one sample; ``preview`` writes a PNG of
a few samples; ``get`` downloads what a dataset's spec lists (with progress and a
checksum) into the data directory, or says how to get a dataset that has no public
download. User mistakes print one line on stderr and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image

from labkit.data import catalog
from labkit.data.catalog import DatasetNotFoundError, DatasetSpec, Located
from labkit.data.preview import classes_of, guess_domain, label_phrase, load_splits, render_value, split_sample

#: exit status for a bad argument (unknown dataset, bad option) and for a failed action
USAGE, FAILED = 2, 1


class _UserError(Exception):
    """A mistake or a missing dataset, reported as one message and an exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def _spec(name: str) -> DatasetSpec:
    try:
        return catalog.get_spec(name)
    except ValueError as e:
        raise _UserError(str(e), USAGE) from None


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser() if args.data_dir else catalog.default_data_dir()


def _locate(spec: DatasetSpec, data_dir: Path) -> Located | str:
    """The spec's ``Located``, or a one-line description of why its ``locate`` failed (a plugin bug)."""
    try:
        return spec.locate(data_dir)
    except Exception as e:
        return f"locate failed: {type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- list


def _table(rows: list[list[str]], header: list[str], max_width: int | None) -> list[str]:
    """Left-aligned columns; the last column is cut to fit ``max_width`` (``None``: never cut)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lead = sum(widths[:-1]) + 2 * (len(widths) - 1)
    room = widths[-1] if max_width is None else max(max_width - lead, 24)
    lines = []
    for row in [header, ["-" * w for w in widths[:-1]] + ["-" * min(widths[-1], room)], *rows]:
        last = row[-1] if len(row[-1]) <= room else row[-1][: room - 3] + "..."
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths[:-1])) + "  " + last)
    return [line.rstrip() for line in lines]


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args)
    rows = []
    for name in catalog.dataset_names():
        spec = catalog.get_spec(name)
        found = _locate(spec, data_dir)
        if isinstance(found, str):
            available, where = "error", found
        elif found.found:
            available, where = "yes", str(found.path)
        else:
            available, where = "no", "looked: " + ", ".join(found.looked or ("(nowhere)",))
        rows.append([name, spec.domain, available, " ".join(spec.description.split()), where])
    if not rows:
        print("no datasets are registered", file=out)
        return 0
    # cut long lines to the terminal; piped output (grep, files) keeps them whole
    width = max(shutil.get_terminal_size((160, 24)).columns, 100) if out.isatty() else None
    for line in _table(rows, ["NAME", "DOMAIN", "AVAILABLE", "DESCRIPTION", "LOCATION"], width):
        print(line, file=out)
    present = sum(r[2] == "yes" for r in rows)
    print(f"\n{present} of {len(rows)} available; data dir: {data_dir}", file=out)
    print("details: labkit data info NAME; fetch: labkit data get NAME", file=out)
    return 0


# ----------------------------------------------------------------------------- info


def describe_sample(sample: Any, domain: str = "", classes: Sequence[str] | None = None, dataset: Any = None) -> str:
    """One line: ``image (28, 28) uint8 ...; label 9 (ankle boot)``, ``text 'The ...' (812 chars)``, ``sequence ...``."""
    x, y = split_sample(sample)
    if domain not in ("vision", "text", "sequence"):
        domain = guess_domain(sample)
    if isinstance(x, str | bytes):
        text = render_value(x)
        snippet = " ".join(text.split())[:70]
        what = f"text {snippet!r}{'...' if len(text) > 70 else ''} ({len(text)} chars)"
    elif isinstance(x, Image.Image):
        what = f"PIL image {x.size[0]}x{x.size[1]} mode {x.mode}"
    else:
        arr = np.asarray(x)
        if domain == "text" and arr.dtype.kind in "iu":
            decoded = " ".join(render_value(arr, dataset).split())
            what = f"token ids {tuple(arr.shape)} {arr.dtype}: {decoded[:60]!r}"
        elif domain == "sequence" and arr.ndim >= 1:
            channels = 1 if arr.ndim == 1 else int(np.prod(arr.shape[1:]))
            what = f"sequence of length {arr.shape[0]}, {channels} channel(s), {arr.dtype} {tuple(arr.shape)}"
        elif domain == "vision":
            what = f"image {tuple(arr.shape)} {arr.dtype}, values {_range(arr)}"
        else:
            what = f"array {tuple(arr.shape)} {arr.dtype}, values {_range(arr)}"
    if y is None:
        return what
    if isinstance(y, np.ndarray) and y.ndim > 0:
        return f"{what}; target array {tuple(y.shape)} {y.dtype}"
    return f"{what}; {label_phrase(y, classes)}"


def _range(arr: np.ndarray) -> str:
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return "-"
    return f"{np.nanmin(arr):.4g}..{np.nanmax(arr):.4g}"


def _format_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple) and len(value) > 12:
        return ", ".join(map(str, value[:12])) + f", ... ({len(value)} in all)"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _size(dataset: Any) -> str:
    try:
        return f"{len(dataset):,}"
    except TypeError:  # an iterable-style dataset: no length known up front
        return "?"


def _not_found(spec: DatasetSpec, found: Located) -> str:
    looked = "\n  ".join(found.looked) or "(nowhere)"
    return f"dataset {spec.name!r} is not available; looked in:\n  {looked}\nto get it: {spec.how_to_get}"


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    spec = _spec(args.name)
    data_dir = _data_dir(args)
    print(f"{spec.name} ({spec.domain})", file=out)
    print(f"  {' '.join(spec.description.split())}", file=out)
    found = _locate(spec, data_dir)
    loadable = isinstance(found, Located) and found.found
    for key, value in spec.info.items():
        # classes and split sizes are shown from the loaded data when it is there
        if not (loadable and key in ("classes", "splits")):
            print(f"  {key}: {_format_value(value)}", file=out)
    for d in spec.downloads:
        size = f", {d.size:,} bytes" if d.size else ""
        print(f"  download: {d.url} -> {d.filename}{size}", file=out)
    if isinstance(found, str):
        raise _UserError(f"dataset {spec.name!r}: {found}")
    if not found.found:
        raise _UserError(_not_found(spec, found))
    print(f"  path: {found.path}", file=out)
    splits, _ = load_splits(spec.name, data_dir)
    sizes = ", ".join(f"{split} {_size(ds)}" for split, ds in splits.items())
    print(f"  splits: {sizes}", file=out)
    first_split, first = next(iter(splits.items()))
    classes = classes_of(first, spec)
    if classes:
        print(f"  classes ({len(classes)}): {_format_value(classes)}", file=out)
    if _size(first) not in ("0", "?"):
        sample = describe_sample(first[0], spec.domain, classes, first)
        print(f"  sample {first_split}[0]: {sample}", file=out)
    return 0


# ----------------------------------------------------------------------------- preview


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    from labkit.data.preview import preview

    spec = _spec(args.name)
    if args.n < 1:
        raise _UserError(f"--n: expected a positive number of samples, got {args.n}", USAGE)
    if Path(args.out).suffix.lower() != ".png":
        raise _UserError(f"--out: expected a file ending in .png, got {args.out!r}", USAGE)
    path = preview(spec.name, args.out, n=args.n, data_dir=_data_dir(args), split=args.split, seed=args.seed)
    print(f"wrote {path}", file=out)
    return 0


# ----------------------------------------------------------------------------- get


def cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    from labkit.data.download import fetch

    spec = _spec(args.name)
    data_dir = _data_dir(args)
    found = _locate(spec, data_dir)
    if isinstance(found, Located) and found.found and not args.force:
        print(f"{spec.name} is already available at {found.path}", file=out)
        return 0
    if not spec.downloads:
        raise _UserError(f"dataset {spec.name!r} has no public download; to get it: {spec.how_to_get}")
    for item in spec.downloads:
        print(f"fetching {item.url}", file=out)
        path = fetch(item, data_dir, progress=not args.quiet)
        print(f"  {path} (sha256 verified{', unpacked' if item.extract else ''})", file=out)
    found = _locate(spec, data_dir)
    if isinstance(found, str) or not found.found:
        detail = found if isinstance(found, str) else _not_found(spec, found)
        raise _UserError(f"downloaded {spec.name!r} into {data_dir}, but the dataset is still not found: {detail}")
    print(f"{spec.name} is available at {found.path}", file=out)
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit data", description="The named datasets: list, inspect, fetch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data-dir", metavar="DIR", help=f"where datasets live (default {catalog.default_data_dir()})")
        return p

    add("list", "every registered dataset: domain, availability, location, description")
    p = add("info", "sizes, classes and one sample of a dataset")
    p.add_argument("name", metavar="NAME")
    p = add("preview", "write a PNG of a few samples with their labels")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    p.add_argument("--n", type=int, default=16, help="how many samples (default 16; text shows at most 8)")
    p.add_argument("--split", default=None, help="which split (default: train, else the first)")
    p.add_argument("--seed", type=int, default=0, help="which samples are drawn (default 0)")
    p = add("get", "download a dataset (with progress and a checksum) or say how to get it")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="download even if the dataset is found already")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


_COMMANDS = {"list": cmd_list, "info": cmd_info, "preview": cmd_preview, "get": cmd_get}


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``labkit data ...``; return the exit status (0 ok, 1 failed, 2 bad arguments)."""
    from labkit.data.download import DownloadError

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse printed the usage message already
        return e.code if isinstance(e.code, int) else USAGE
    try:
        return _COMMANDS[args.command](args, out)
    except _UserError as e:
        print(f"labkit data {args.command}: {e}", file=err)
        return e.status
    except (DatasetNotFoundError, DownloadError) as e:
        print(f"labkit data {args.command}: {e}", file=err)
        return FAILED
    except OSError as e:  # unreadable data files, a full disk, no permission on the data dir
        print(f"labkit data {args.command}: {e}", file=err)
        return FAILED
    except ValueError as e:  # a bad option value or a dataset's own validation (names the file/key)
        print(f"labkit data {args.command}: {e}", file=err)
        return FAILED


if __name__ == "__main__":
    raise SystemExit(main())
