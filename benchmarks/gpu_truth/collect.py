"""Turn what the device calls brought back into the committed records (run HERE).

    python3 benchmarks/gpu_truth/collect.py /work/.device/12 /work/.device/13 [...] \
        [--out tests/data/gpu_truth]

Each folder holds run_cases.py's records.tar.gz and logs.tar.gz (a later folder wins for the
same case). Every record is rebuilt from its log with the current parser
(servecheck.smoke.logparse; the child's SERVECHECK_ENV / SERVECHECK_RESULT lines, GPU_TRUTH_ in
older logs), keeping the device-side fields the log does not hold (driver probe, exit code, wall
time), so a parser fix needs no new device time. Writes <out>/<case><suffix>.json, sorted keys,
one file per case.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cases as case_table  # noqa: E402
import run_cases  # noqa: E402

ROOT = HERE.parents[1]


def _members(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not path.exists():
        return out
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.isfile():
                f = t.extractfile(m)
                if f is not None:
                    out[Path(m.name).name] = f.read()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "tests/data/gpu_truth")
    ap.add_argument(
        "--suffix",
        default="",
        help="appended to each file name, e.g. --h100 for a second GPU model's records",
    )
    args = ap.parse_args()
    records: dict[str, dict] = {}
    logs: dict[str, str] = {}
    for d in args.dirs:
        for name, data in _members(d / "records.tar.gz").items():
            records[name.removesuffix(".json")] = json.loads(data)
        for name, data in _members(d / "logs.tar.gz").items():
            logs[name.removesuffix(".log")] = io.BytesIO(data).read().decode("utf-8", "replace")
    table = case_table.by_name()
    args.out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, old in sorted(records.items()):
        if name not in logs or name not in table:
            print(f"skip {name}: no log or no case", file=sys.stderr)
            continue
        timed_out = old.get("outcome") == "timeout"
        rec = run_cases.make_record(
            table[name],
            logs[name],
            old.get("exit_code"),
            old.get("wall_s", 0.0),
            old.get("driver", {}),
            timed_out,
        )
        rec["record"] = name + args.suffix
        out = args.out / f"{name}{args.suffix}.json"
        out.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        n += 1
    print(f"wrote {n} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
