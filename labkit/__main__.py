"""``python -m labkit COMMAND``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = {"demo": "train a small MLP on the spiral problem with labkit's core"}
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m labkit COMMAND [options]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:10s} {text}")
        return 0
    if args[0] == "demo":
        from labkit.cli.demo import main as demo

        return demo(args[1:])
    print(f"labkit: unknown command {args[0]!r}; expected one of {sorted(commands)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
