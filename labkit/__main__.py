"""``labkit COMMAND`` / ``python -m labkit COMMAND``: a dispatcher that imports only the command it runs.

``labkit --help`` imports nothing but this module (no numpy, Hydra or MLflow), so it answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

#: command -> (module, function, one-line help)
COMMANDS = {
    "train": ("labkit.cli.train", "main", "train a model from the Hydra configs (labkit train --help)"),
    "rerun": ("labkit.cli.rerun", "main", "run a tracked run's logged config again: labkit rerun RUN_ID [KEY=VALUE]"),
    "runs": ("labkit.cli.runs", "main_runs", "list tracked runs as a table"),
    "ui": ("labkit.cli.ui", "main_ui", "open the MLflow UI on the run store"),
    "data": ("labkit.cli.data", "main", "list, locate and fetch the named datasets"),
    "plugins": ("labkit.cli.plugins", "main", "installed plugins: list, check NAME (conformance kit), new NAME"),
    "sync": ("labkit.cli.sync", "main", "send spooled runs (offline, or left by a tracking outage) to MLflow"),
    "server": ("labkit.cli.server", "main", "start an MLflow tracking server for a team (--postgres DIR to try one)"),
    "demo": ("labkit.cli.demo", "main", "train a small MLP on the spiral problem with labkit's core"),
}


def usage() -> str:
    lines = ["usage: labkit COMMAND [options]   (or python -m labkit COMMAND)", "", "commands:"]
    lines += [f"  {name:8s} {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "labkit COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `labkit train --help | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version

        print(f"labkit {version('labkit')}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"labkit: unknown command {name!r}; expected one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, function, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"labkit {name}: this command is not available in this installation ({exc})", file=sys.stderr)
        return 2
    return int(getattr(module, function)(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
