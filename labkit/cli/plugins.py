"""``labkit plugins list | check NAME | new NAME``: installed plugins, the conformance kit, a scaffold.

``list`` shows every installed plugin (entry-point group ``labkit.plugins``): its distribution and
version, whether it loaded (a failed one with its error), what it registers by kind and the configs
it contributes. ``check NAME`` runs the conformance kit and prints its report (exit 1 on a failure).
``new NAME`` writes a plugin package to start from. Mistakes print one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

#: exit status for a bad argument, and for a failed check
USAGE, FAILED = 2, 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit plugins", description="installed labkit plugins")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,check,new}")
    p = sub.add_parser("list", help="installed plugins: version, status, what they register, their configs")
    p.add_argument("-v", "--verbose", action="store_true", help="also list every registered name")
    p = sub.add_parser("check", help="run the conformance kit on one plugin")
    p.add_argument("name", help="the plugin's name (its entry point's name, see labkit plugins list)")
    p.add_argument("--no-experiments", action="store_true", help="skip the short training runs of its experiments")
    p.add_argument(
        "--device",
        action="append",
        choices=["cpu", "cuda"],
        help="check ops and modules here (repeatable; default: all available)",
    )
    p.add_argument("--work-dir", default=None, help="keep the experiment runs' MLflow store here (default: a temp dir)")
    p = sub.add_parser("new", help="scaffold a plugin package: labkit-NAME/ with an op, a layer, configs, tests")
    p.add_argument("name", help="the plugin's name: lowercase letters, digits and underscores")
    p.add_argument("--dir", default=".", help="where to create labkit-NAME/ (default: the current directory)")
    return parser


def _registers(registered: Sequence[tuple[str, str]]) -> str:
    counts = Counter(kind for kind, _ in registered)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "-"


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    from labkit.plugins.registry import registry

    plugins = registry.load_plugins(reload=True)
    if not plugins:
        print("no labkit plugins are installed (entry point group 'labkit.plugins'); see docs/plugins.md", file=out)
        return 0
    header = ["NAME", "DISTRIBUTION", "STATUS", "REGISTERS", "CONFIGS"]
    rows = []
    for key, info in sorted(plugins.items()):
        configs = ", ".join(info.configs()) or "-"
        rows.append([key, info.source, "ok" if info.ok else "FAILED", _registers(info.registered), configs])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1], file=out)
    for key, info in sorted(plugins.items()):
        if not info.ok:
            print(f"\n{key} failed to load ({info.module}): {info.error}", file=out)
        elif args.verbose and info.registered:
            print(f"\n{key}:", file=out)
            for kind, name in info.registered:
                print(f"  {kind:9s} {name}", file=out)
    failed = sum(not i.ok for i in plugins.values())
    print(f"\n{len(plugins)} plugin(s), {failed} failed; check one with: labkit plugins check NAME", file=out)
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from labkit.plugins.conformance import check_plugin

    try:
        report = check_plugin(
            args.name, devices=args.device, run_experiments=not args.no_experiments, work_dir=args.work_dir
        )
    except ValueError as exc:
        print(f"labkit plugins check: {exc}", file=sys.stderr)
        return USAGE
    print(report.table(), file=out)
    return 0 if report.ok else FAILED


def cmd_new(args: argparse.Namespace, out: TextIO) -> int:
    from labkit.plugins.scaffold import scaffold

    try:
        root = scaffold(args.name, Path(args.dir))
    except (ValueError, FileExistsError) as exc:
        print(f"labkit plugins new: {exc}", file=sys.stderr)
        return USAGE
    print(f"wrote {root}", file=out)
    print(f"install it: pip install -e {root}", file=out)
    print(f"check it:   labkit plugins check {args.name}", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = {"list": cmd_list, "check": cmd_check, "new": cmd_new}[args.command]
    return command(args, out or sys.stdout)
