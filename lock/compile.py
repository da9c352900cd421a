"""Re-resolve the lock: `make lock` (uv, from PyPI), `make lock-upgrade` (every pin to the newest).

One resolution, `lock/dev.txt`, pins every package that `make install` puts in `.venv` (all
the extras, pip, setuptools and uv), with the hashes of every file PyPI serves for each pin,
for Python 3.11 and newer on every platform (uv's universal mode, one version per package).
The images install parts of it: `lock/jobs.txt` (the job image) and `lock/controller.txt`
(the controller image) are resolved under `lock/dev.txt` as constraints, so they hold the same
versions and hashes. `constraints.txt` is `lock/dev.txt` without the hashes, plus torch: it
pins torch's own dependencies wherever torch is installed from another index.

torch and its build's own packages (triton, nvidia-*, cuda-*) are left out of the locks:
which ones a wheel needs depends on its build (the CPU wheel on this disk needs none, a CUDA
wheel pins its own exactly), and their hashes differ per index. Their one pin is
`lock/torch.in`.

Usage: python lock/compile.py [--upgrade] [--check] | --extras
  (default: keep every pin that still fits pyproject.toml; --upgrade: every pin to the newest
  that fits; --check: write nothing, fail if a file would change; --extras: print the
  distributions installed here that lock/dev.txt does not hold, for make install to remove)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "lock"
PYTHON_FLOOR = "3.11"
# packages a torch build brings of its own; never locked (see the module's docstring)
TORCH_BUILD = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
# (output, extras, other inputs); dev.txt first: the others are resolved under it
LOCKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("dev.txt", ("jobs", "test", "lint", "bench"), ("lock/tools.in",)),
    ("jobs.txt", ("jobs",), ("lock/build.in",)),
    ("controller.txt", (), ()),
)
HEADER = "# The lock: made by `make lock` (lock/compile.py); do not edit by hand.\n"


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        sys.exit("error: uv is not installed (make install puts it in .venv)")
    return found


def blocks(text: str) -> list[tuple[str, str]]:
    """Split uv's requirements output into (package name, its lines), comments dropped."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            name = re.split(r"[=<>;\s\[]", line, maxsplit=1)[0].lower().replace("_", "-")
            out.append((name, line + "\n"))
        elif out and line.startswith("    ") and not line.lstrip().startswith("#"):
            out[-1] = (out[-1][0], out[-1][1] + line + "\n")
    return out


def resolve(extras: tuple[str, ...], inputs: tuple[str, ...], constraints: list[Path], out: Path) -> None:
    command = [uv(), "pip", "compile", "pyproject.toml", *inputs, "--universal", "--python-version", PYTHON_FLOOR,
               "--fork-strategy", "fewest", "--generate-hashes", "--no-header", "--no-annotate", "--quiet",
               "-c", "lock/torch.in", "-o", str(out)]
    for extra in extras:
        command += ["--extra", extra]
    for path in constraints:
        command += ["-c", str(path)]
    subprocess.run(command, cwd=REPO, check=True)


def kept(text: str) -> str:
    return "".join(lines for name, lines in blocks(text) if not TORCH_BUILD.match(name))


def pins(locked: str, torch_pin: str) -> str:
    lines = [block.splitlines()[0].rstrip(" \\") + "\n" for _, block in blocks(locked)]
    return ("# Every pin of lock/dev.txt without its hashes, and torch's (lock/torch.in): made by\n"
            "# `make lock`; do not edit by hand. `pip install -c constraints.txt ...` installs these versions.\n"
            + torch_pin + "".join(lines))


def compile_all(work: Path, upgrade: bool) -> dict[str, str]:
    """Every lock file's new text, keyed by its path under the repository."""
    texts: dict[str, str] = {}
    for name, extras, inputs in LOCKS:
        raw = work / name
        if not upgrade and (LOCK / name).exists():
            shutil.copy(LOCK / name, raw)  # uv keeps the pins it finds in its output file
        resolve(extras, inputs, [work / "dev.txt"] if name != "dev.txt" else [], raw)
        texts[f"lock/{name}"] = HEADER + kept(raw.read_text())
        if name == "dev.txt":
            (work / "dev.txt").write_text(raw.read_text())
    torch_pin = next(line for line in (LOCK / "torch.in").read_text().splitlines() if line and not line.startswith("#"))
    texts["constraints.txt"] = pins(texts["lock/dev.txt"], torch_pin + "\n")
    return texts


def extras() -> list[str]:
    """Installed distributions that are neither in lock/dev.txt nor torch, its build's own or
    the project (left over from an earlier lock)."""
    from importlib import metadata

    locked = {name for name, _ in blocks((LOCK / "dev.txt").read_text())}
    installed = {re.sub(r"[-_.]+", "-", (d.metadata["Name"] or "")).lower() for d in metadata.distributions()}
    return sorted(n for n in installed if n and n not in locked and n != "cluster-tune" and not TORCH_BUILD.match(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="every pin to the newest version that fits")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a lock file would change")
    parser.add_argument("--extras", action="store_true", help="print what is installed here and not locked")
    args = parser.parse_args(argv)
    if args.extras:
        print("\n".join(extras()))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        texts = compile_all(Path(tmp), args.upgrade)
    stale = [path for path, text in texts.items()
             if not (REPO / path).exists() or (REPO / path).read_text() != text]
    if args.check:
        for path in stale:
            print(f"lock: {path} would change", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        (REPO / path).write_text(texts[path])
        print(f"lock: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
