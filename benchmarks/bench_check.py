"""Benchmark `servecheck.api.check` against a bare header read, in one process.

    python benchmarks/bench_check.py [--repeat 5]

Builds shape-exact sparse checkpoints (real headers, no data) for the shipped GLM-4.5-Air
FP8 example (47 shards, ~36k tensors) and the GLM-4.5 FP8 example (93 shards, ~89k tensors)
in a temporary folder, then times, best of N in the same process:
  baseline  open every shard, read the 8-byte length and the JSON header, json.loads it;
  check     servecheck.api.check() on the folder (headers, inventory, resolution, audit).
Prints both and the ratio check/baseline. DESIGN.md budgets the whole command at about 2x a
bare header-reading process; process start-up and CLI imports are measured separately
(`python -X importtime -m servecheck.cli --help`).
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from pathlib import Path

from make_sparse import write

from servecheck.api import check

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "glm-4.5-air-fp8 (47 shards)": (ROOT / "examples" / "glm-4.5-air-derestricted-fp8", 47),
    "glm-4.5-fp8 (93 shards)": (ROOT / "examples" / "glm-4.5-fp8", 93),
}


def read_headers(folder: Path) -> int:
    n = 0
    for shard in sorted(folder.glob("*.safetensors")):
        with shard.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            n += len(json.loads(f.read(length)))
    return n


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, (config, shards) in CASES.items():
            folder = Path(tmp) / label.split()[0]
            stats = write(config, folder, shards)
            base = best(lambda f=folder: read_headers(f), args.repeat)
            full = best(lambda f=folder: check(f), args.repeat)
            print(
                f"{label}: {stats['tensors']:,} tensors | baseline {base * 1000:.0f} ms | "
                f"check {full * 1000:.0f} ms | ratio {full / base:.2f}x"
            )


if __name__ == "__main__":
    main()
