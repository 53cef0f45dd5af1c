"""Write docs/kernel-table.md: scheme x architecture -> the kernel vLLM selects.

    python scripts/kernel_table.py            # write docs/kernel-table.md
    python scripts/kernel_table.py --check    # exit 1 if the committed file is stale

The table is computed by servecheck.hardware.kernel_matrix, the code `servecheck check --gpu`
uses; tests/test_kernel_table.py checks the committed file equals a fresh one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from servecheck.hardware.kernel_matrix import render_markdown
from servecheck.versions import Release

TARGET = Path(__file__).resolve().parent.parent / "docs" / "kernel-table.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--version", default="0.33.0", help="vLLM release to mirror")
    args = parser.parse_args()
    text = render_markdown(Release.parse(args.version))
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale; run python scripts/kernel_table.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
