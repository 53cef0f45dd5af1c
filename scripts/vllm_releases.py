"""Write knowledge/vllm_releases.toml: every vLLM release on the package index from 0.10.0 on.

    python scripts/vllm_releases.py            # rewrite the list from the package index
    python scripts/vllm_releases.py --check    # exit 1 if the index lists releases not in it

The list is what servecheck models: a release in it mirrors its own behaviour (the version-keyed
rows of knowledge/ say from which release each value holds, so a new release inherits the newest
values); a release older than the first or newer than the last gets a warning finding.
Adding a vLLM release is running this script (see docs/adding-a-vllm-release.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vllm_sources import published_versions

OUT = Path(__file__).resolve().parent.parent / "src/servecheck/knowledge/vllm_releases.toml"
HEADER = """\
# Every published vLLM release servecheck models, oldest first (stable releases on the package
# index from 0.10.0 on). Written by scripts/vllm_releases.py; do not edit by hand.
# A release uses, in every version-keyed row of knowledge/, the value of the latest `from` key
# at or below it. The newest release here is the default when no vLLM version is given.
"""


def render(versions: list[str]) -> str:
    body = "".join(f'    "{v}",\n' for v in versions)
    return f"{HEADER}\nreleases = [\n{body}]\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = render(published_versions())
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT.name} is out of date: run scripts/vllm_releases.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
