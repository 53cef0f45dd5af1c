"""Run the GPU-truth cases with a real CUDA vLLM and write one JSON record per case.

Runs on the GPU machine (see README.md), from the repository root:

    PYTHONPATH=~/gpu_truth/site python3 benchmarks/gpu_truth/run_cases.py --deadline 540

Each case runs in its own subprocess (``run_cases.py child CASE``) with a timeout, with
VLLM_LOGGING_LEVEL=INFO; its log is captured and parsed. Tiny cases ("tiny" group) run several at
a time; full-size dummy loads ("full" group) run one at a time, alone on the GPU, after them.
Records and logs accumulate under ~/gpu_truth/{records,logs} (a warm machine keeps them between
calls, so a second call resumes where the first stopped); after every case the records are
copied to $OUT (one tar when more than 8) and the logs tarred to $OUT/logs.tar.gz.

Standard library and servecheck.smoke only (from src/, no install needed): the child is
servecheck.smoke.child, the log parser and record builder servecheck.smoke.logparse / record,
the same code `servecheck smoke` runs. The child imports vllm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "src"))
import cases as case_table  # noqa: E402

from servecheck.smoke import child as smoke_child  # noqa: E402
from servecheck.smoke.record import build_record  # noqa: E402
from servecheck.smoke.runner import driver_probe  # noqa: E402

WORK = Path(os.path.expanduser("~/gpu_truth"))
RECORDS = WORK / "records"
LOGS = WORK / "logs"

CHILD_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_USE_FLASHINFER_SAMPLER": "0",  # flashinfer is not installed (recipe)
    "VLLM_LOGGING_LEVEL": "INFO",
    # engine core in this process: the root exception reaches the case script with its class
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_DEEP_GEMM_WARMUP": "skip",  # saves minutes of JIT; runs after KV sizing
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

TIMEOUT = {"tiny": 300, "full": 420}
ESTIMATE = {
    "tiny": 60,
    "full": 90,
    "arch": 120,
}  # seconds, to decide whether a case still fits the deadline


# ------------------------------------------------------------------------- child ----


def child(name: str) -> int:
    """Load one case with vLLM (servecheck.smoke.child: the same child `servecheck smoke` runs,
    with the case's LLM(...) arguments instead of `vllm serve` ones)."""
    case = case_table.by_name()[name]
    kwargs = dict(case["llm"])
    if case.get("tokenizer"):
        kwargs["tokenizer"] = case["tokenizer"]
    spec = {"model": case["model"], "llm_kwargs": kwargs, "generate": bool(case.get("generate"))}
    result = smoke_child.run(spec)
    smoke_child.emit("RESULT", result)
    sys.stdout.flush()
    os._exit(0)  # skip vLLM's atexit teardown: its failures would only add noise


# ------------------------------------------------------------------------- parent ----


def env_probe() -> dict[str, Any]:
    return driver_probe()


def export(out_dir: Path) -> None:
    """Copy what exists so far to $OUT (records: tar when more than 8; logs: one tar.gz)."""
    if not out_dir:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = sorted(RECORDS.glob("*.json"))
    with tarfile.open(out_dir / "records.tar.gz.tmp", "w:gz") as t:
        for r in recs:
            t.add(r, arcname=f"records/{r.name}")
    os.replace(out_dir / "records.tar.gz.tmp", out_dir / "records.tar.gz")
    with tarfile.open(out_dir / "logs.tar.gz.tmp", "w:gz") as t:
        for r in sorted(LOGS.glob("*.log")):
            t.add(r, arcname=f"logs/{r.name}")
    os.replace(out_dir / "logs.tar.gz.tmp", out_dir / "logs.tar.gz")
    if len(recs) <= 6:
        for r in recs:
            shutil.copy(r, out_dir / r.name)


def make_record(
    case: dict[str, Any],
    log_text: str,
    rc: int | None,
    wall: float,
    probe: dict[str, Any],
    timed_out: bool,
) -> dict[str, Any]:
    """One case's record, rebuilt from its log (servecheck.smoke.record.build_record)."""
    about = {
        "case": case["name"],
        "kind": case["kind"],
        "note": case.get("note", ""),
        "model": case["model"],
        "source": case.get("source") or case.get("config_source"),
        "build": case.get("build"),
        "tokenizer": case.get("tokenizer"),
        "llm_kwargs": case["llm"],
        "generate": case.get("generate", False),
        "env": CHILD_ENV,
    }
    return build_record(log_text, about, rc, wall, probe, timed_out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=540, help="seconds from now")
    ap.add_argument("--jobs", type=int, default=8, help="tiny cases at a time")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--groups", default="tiny,full")
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    end = time.time() + args.deadline
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    RECORDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    probe = env_probe()
    gpu_gib = 0.0
    if m := re.search(r",\s*([0-9]+) MiB", probe.get("nvidia_smi", "")):
        gpu_gib = int(m.group(1)) / 1024
    print("probe:", probe, flush=True)

    only = {x for x in args.only.split(",") if x}
    groups = args.groups.split(",")
    env = {**os.environ, **CHILD_ENV}

    def todo(group: str) -> list[dict[str, Any]]:
        cs = [c for c in case_table.CASES if c["group"] == group]
        if only:
            cs = [c for c in cs if c["name"] in only]
        if not args.rerun:
            cs = [c for c in cs if not (RECORDS / f"{c['name']}.json").exists()]
        cs = [c for c in cs if not c.get("min_gpu_gib") or gpu_gib >= c["min_gpu_gib"]]
        return sorted(cs, key=lambda c: (c["priority"], c["kind"]))

    def start(case: dict[str, Any]) -> tuple[subprocess.Popen, Any, float]:
        log = open(LOGS / f"{case['name']}.log", "w")  # noqa: SIM115
        p = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "child", case["name"]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        print(f"[{time.strftime('%H:%M:%S')}] start {case['name']}", flush=True)
        return p, log, time.time()

    def finish(case: dict[str, Any], p: subprocess.Popen, log: Any, t0: float, to: bool) -> None:
        log.close()
        text = (LOGS / f"{case['name']}.log").read_text(errors="replace")
        rec = make_record(case, text, p.returncode, time.time() - t0, probe, to)
        (RECORDS / f"{case['name']}.json").write_text(json.dumps(rec, indent=1) + "\n")
        print(
            f"[{time.strftime('%H:%M:%S')}] done {case['name']}: {rec['outcome']} "
            f"{rec['error_class'] or ''} {rec['wall_s']}s",
            flush=True,
        )
        export(out_dir)

    def kill(p: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    for group in groups:
        queue = todo(group)
        jobs = args.jobs if group == "tiny" else 1
        running: list[tuple[dict[str, Any], subprocess.Popen, Any, float]] = []
        while queue or running:
            while queue and len(running) < jobs:
                if time.time() + ESTIMATE[group] > end:
                    queue = []
                    break
                c = queue.pop(0)
                running.append((c, *start(c)))
            time.sleep(1)
            for item in list(running):
                c, p, log, t0 = item
                if p.poll() is not None:
                    running.remove(item)
                    finish(c, p, log, t0, False)
                elif time.time() > t0 + TIMEOUT[group]:
                    kill(p)
                    running.remove(item)
                    finish(c, p, log, t0, True)
                elif time.time() > end + 15:
                    # cut off by this call's deadline, not by its own timeout: no record, so
                    # the next call runs it again
                    kill(p)
                    log.close()
                    running.remove(item)
                    print(f"cut off by the deadline: {c['name']}", flush=True)
    export(out_dir)
    n = len(list(RECORDS.glob("*.json")))
    print(f"records so far: {n}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        sys.exit(child(sys.argv[2]))
    sys.exit(main())
