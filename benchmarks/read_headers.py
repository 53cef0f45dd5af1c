"""Baseline for the check benchmark: a bare process that only parses every shard's header.

    python benchmarks/read_headers.py CHECKPOINT_DIR

This is the floor any header-based tool pays (open, read 8 bytes + the JSON header, parse).
The design budget for `servecheck check` is about twice this (DESIGN.md, Performance budget).
"""

import json
import struct
import sys
from pathlib import Path

n = 0
for shard in sorted(Path(sys.argv[1]).glob("*.safetensors")):
    with shard.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        n += len(json.loads(f.read(length)))
print(n)
