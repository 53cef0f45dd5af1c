"""Fetch the Python sources of released vLLM wheels, for the extraction scripts beside this one.

    python scripts/vllm_sources.py 0.33.0 0.24.0     # unpack these releases
    python scripts/vllm_sources.py --all             # every release from 0.10.0 to the newest
    python scripts/vllm_sources.py --list            # what is unpacked already

Each release's `vllm/**/*.py` lands in `$SERVECHECK_VLLM_SRC/<version>/vllm/` (default
`~/.cache/servecheck/vllm-src`); the wheel is deleted once unpacked, so the cache holds a few
tens of MB per release. Scripts that mine vLLM (registry, messages, arguments) call
`source_dir(version)` and never import vllm.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CACHE = Path(
    os.environ.get("SERVECHECK_VLLM_SRC")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "servecheck/vllm-src"
)
FIRST = (0, 10, 0)


def version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def source_dir(version: str) -> Path:
    """The unpacked `vllm/` package of one release (fetching it if needed)."""
    root = CACHE / version
    if not (root / "vllm" / "__init__.py").exists():
        fetch(version)
    return root / "vllm"


def published_versions() -> list[str]:
    """Every vllm release on the package index from 0.10.0 on, oldest first (no pre-releases)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "vllm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Available versions:"))
    found = [v.strip() for v in line.split(":", 1)[1].split(",")]
    stable = [v for v in found if re.fullmatch(r"\d+(\.\d+)+", v)]
    return sorted((v for v in stable if version_key(v) >= FIRST), key=version_key)


def fetch(version: str) -> Path:
    """Download one wheel, keep its Python files and package data, delete the wheel.

    No --platform flags: vLLM's x86-64 wheels changed manylinux tags from release to release;
    pip picks the one this host can install."""
    root = CACHE / version
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                tmp,
                f"vllm=={version}",
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("vllm-*.whl"))
        staging = Path(tempfile.mkdtemp(dir=CACHE.parent if CACHE.parent.exists() else None))
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith("vllm/") and name.endswith((".py", ".json", ".jinja")):
                    zf.extract(name, staging)
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*")
    parser.add_argument("--all", action="store_true", help="every release from 0.10.0 on")
    parser.add_argument("--list", action="store_true", help="list unpacked releases")
    args = parser.parse_args()
    if args.list:
        done = sorted((p.name for p in CACHE.glob("*") if (p / "vllm").exists()), key=version_key)
        print("\n".join(done))
        return 0
    wanted = published_versions() if args.all else args.versions
    for version in wanted:
        if (CACHE / version / "vllm" / "__init__.py").exists():
            continue
        print(f"fetching vLLM {version}", file=sys.stderr)
        fetch(version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
