"""``python -m tests.complexity PATH... --max N``: fail when a function's cyclomatic complexity
(radon's measure) is above N; ``make lint`` runs it with N = 15 (radon's grade C at most)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def too_complex(paths: list[str], limit: int) -> list[str]:
    """``file:line name (complexity)`` of every function or method above ``limit``."""
    from radon.complexity import cc_visit

    found = []
    for root in paths:
        files = [Path(root)] if Path(root).is_file() else sorted(Path(root).rglob("*.py"))
        for path in files:
            for block in cc_visit(path.read_text(encoding="utf-8")):
                if type(block).__name__ != "Class" and block.complexity > limit:  # functions and methods
                    found.append(f"{path}:{block.lineno} {block.name} ({block.complexity})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.complexity")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--max", type=int, default=15)
    args = parser.parse_args(argv)
    found = too_complex(args.paths, args.max)
    for line in found:
        print(f"{line}: above {args.max}", file=sys.stderr)
    worst = max((int(line.rsplit("(", 1)[1].rstrip(")")) for line in found), default=0)
    print(f"complexity: {len(found)} function(s) above {args.max}" + (f", worst {worst}" if found else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
