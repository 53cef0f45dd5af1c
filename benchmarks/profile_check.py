"""Where a whole `check --format json` spends its CPU time, stage by stage.

    python benchmarks/profile_check.py CHECKPOINT_DIR [--runs 3]

Runs the check in fresh processes (so start-up and imports count) with a CPU-time clock
(time.process_time) around the stages: interpreter start, imports, reading config.json and the
index, the header JSON (json.loads, the floor a bare reader pays too), the per-tensor records
(validation and TensorInfo), merging the shards, the audit (its index comparison and its
per-kind pass), the rest of the check, and the JSON output. Prints the minimum over the runs of
each, in ms. Wraps functions by name: a stage whose function was renamed is left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, io, json, sys, time, contextlib
P = time.process_time
start = P()
acc = {"start": start}
t = P()
import servecheck.api as api
from servecheck.render.check.json_out import to_dict
from servecheck.render.console import write_json
acc["imports"] = P() - t

def wrap(module, name, stage):
    fn = getattr(module, name, None)
    if fn is None:
        return
    def timed(*a, **k):
        t0 = P()
        try:
            return fn(*a, **k)
        finally:
            acc[stage] = acc.get(stage, 0.0) + P() - t0
    setattr(module, name, timed)

import importlib
import servecheck.source.local as local
import servecheck.source.safetensors as st
import servecheck.checks.audit as audit
try:  # the JSON reader at the edge, where there is one
    wrap(importlib.import_module("servecheck.source.jsonin"), "read_json", "config + index JSON")
except ImportError:
    wrap(local, "read_json", "config + index JSON")
wrap(local, "_read_shards", "shards (read + JSON + records)")
wrap(st, "_parse_header", "records (validation, TensorInfo)")
wrap(local, "assemble", "merge shards")
wrap(audit, "_file_findings", "audit: index vs headers")
wrap(audit, "_clean_bytes", "audit: per-kind pass")
wrap(api, "audit", "audit (all)")
gc.disable()
t = P()
ckpt = api.open_model(sys.argv[1])
acc["open (all)"] = P() - t
t = P()
report = api.check_checkpoint(ckpt)
acc["check (all)"] = P() - t
t = P()
with contextlib.redirect_stdout(io.StringIO()):
    write_json(to_dict(report))
acc["JSON output"] = P() - t
acc["total"] = P()
print(json.dumps(acc))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.checkpoint)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for stage, seconds in json.loads(out).items():
            best[stage] = min(best.get(stage, seconds), seconds)
    shards = best.get("shards (read + JSON + records)", 0.0)
    records = best.get("records (validation, TensorInfo)", 0.0)
    best["header JSON (+ file reads)"] = shards - records
    for stage, seconds in best.items():
        print(f"{stage:36s} {seconds * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
