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
import gpulock  # noqa: E402
import run_smoke  # noqa: E402

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

# Seconds a case may hold the GPU (from its engine's init_device, when it takes the lock) before
# it is stopped, and the estimated seconds it holds it (to decide whether it still fits the call).
TIMEOUT = {"tiny": 300, "full": 420, "arch": 420, "smoke": 420}
WINDOW = {"tiny": 25, "full": 45, "arch": 60, "smoke-tiny": 30, "smoke-dummy": 60}
PRE_S = 30  # imports and engine configuration before a case asks for the GPU
# cases that hold the GPU longer: ~100 GiB of weights, or many kernels to compile
WINDOW_OF = {
    "dummy-qwen3-next-80b-fp8-len32k-u090": 150,
    "dummy-llama-4-scout-fp8-textonly-len32k-u090": 120,
    "dummy-llama-4-scout-fp8-textonly-len128k-u090": 120,
    "smoke-dummy-qwen3-30b-a3b-fp8-graphs": 200,
}

# ------------------------------------------------------------------------- child ----


def child(name: str) -> int:
    """Load one case with vLLM (servecheck.smoke.child: the same child `servecheck smoke` runs,
    with the case's LLM(...) arguments instead of `vllm serve` ones)."""
    case = case_table.by_name()[name]
    kwargs = dict(case["llm"])
    if case.get("tokenizer"):
        kwargs["tokenizer"] = case["tokenizer"]
    spec = {"model": case["model"], "llm_kwargs": kwargs, "generate": bool(case.get("generate"))}
    gpulock.install(smoke_child)  # no-op unless GPU_TRUTH_LOCK is set
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
    run_smoke.export(out_dir)


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


# ------------------------------------------------------------------------- scheduler ----


class Job:
    """One case of cases.py (its own child process) or one `servecheck smoke` case."""

    def __init__(self, name: str, case: dict[str, Any] | None, group: str, window: float):
        self.name, self.case, self.group = name, case, group
        self.window = WINDOW_OF.get(name, window)
        self.proc: subprocess.Popen | None = None
        self.log: Any = None
        self.err: Any = None  # smoke's stderr (its live status lines)
        self.t0 = 0.0
        self.window_file = WORK / "windows" / f"{name}.start"

    def window_start(self) -> float | None:
        try:
            return float(self.window_file.read_text().strip())
        except (OSError, ValueError):
            return None


def smoke_jobs() -> list[Job]:
    out = []
    for name, _model, vllm_args, _limit in run_smoke.CASES:
        kind = "smoke-dummy" if "dummy" in vllm_args else "smoke-tiny"
        out.append(Job(f"smoke-{name}", None, "smoke", WINDOW[kind]))
    return out


def all_jobs() -> list[Job]:
    jobs = [Job(c["name"], c, c["group"], WINDOW[c["group"]]) for c in case_table.CASES]
    return jobs + smoke_jobs()


def select(args: argparse.Namespace, gpu_gib: float) -> list[Job]:
    """The jobs to run, in order: --only's order when given, else by group and priority."""
    jobs = {j.name: j for j in all_jobs()}
    names = [x for x in args.only.split(",") if x]
    if args.plan:
        lines = Path(args.plan).read_text().splitlines()
        names += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    if names:
        unknown = [n for n in names if n not in jobs]
        if unknown:
            raise SystemExit(f"unknown cases: {unknown}")
        chosen = [jobs[n] for n in names]
    else:
        groups = args.groups.split(",")
        chosen = [j for j in jobs.values() if j.group in groups]
        chosen.sort(key=lambda j: (groups.index(j.group), (j.case or {}).get("priority", 0)))
    if not args.rerun:
        chosen = [j for j in chosen if not has_result(j)]
    return [
        j
        for j in chosen
        if not (j.case and j.case.get("min_gpu_gib") and gpu_gib < j.case["min_gpu_gib"])
    ]


def has_result(job: Job) -> bool:
    if job.case is None:
        return run_smoke.done(job.name.removeprefix("smoke-"))
    return (RECORDS / f"{job.name}.json").exists()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=540, help="seconds from now")
    ap.add_argument("--jobs", type=int, default=4, help="cases started at a time")
    ap.add_argument("--only", default="", help="comma-separated cases, run in this order")
    ap.add_argument("--plan", default="", help="a file of case names, one a line, in order")
    ap.add_argument("--groups", default="tiny,full,arch")
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    end = time.time() + args.deadline
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    for d in (RECORDS, LOGS, WORK / "windows"):
        d.mkdir(parents=True, exist_ok=True)
    run_smoke.prepare_dirs()
    probe = env_probe()
    gpu_gib = 0.0
    if m := re.search(r",\s*([0-9]+) MiB", probe.get("nvidia_smi", "")):
        gpu_gib = int(m.group(1)) / 1024
    print("probe:", probe, flush=True)
    queue = select(args, gpu_gib)
    (HERE / "vllm_python").chmod(0o755)  # the device's copy of the tree may lose the mode
    lock = str(WORK / "gpu.lock")
    base_env = {**os.environ, **CHILD_ENV, "GPU_TRUTH_LOCK": lock}
    smoke_env = {
        **run_smoke.env_for(),
        "GPU_TRUTH_LOCK": lock,
        "GPU_TRUTH_PYTHON": sys.executable,
        "SERVECHECK_VLLM_PYTHON": str(HERE / "vllm_python"),
    }
    running: list[Job] = []

    def start(job: Job) -> None:
        job.window_file.unlink(missing_ok=True)
        if job.case is not None:
            job.log = open(LOGS / f"{job.name}.log", "w")  # noqa: SIM115
            cmd = [sys.executable, str(Path(__file__).resolve()), "child", job.name]
            env = {**base_env, "GPU_TRUTH_WINDOW_FILE": str(job.window_file)}
        else:
            job.log = open(WORK / "smoke" / f"{job.name}.stdout", "w")  # noqa: SIM115
            job.err = open(WORK / "smoke" / f"{job.name}.stderr", "w")  # noqa: SIM115
            cmd, _ = run_smoke.command(job.name.removeprefix("smoke-"), timeout=3600)
            env = {**smoke_env, "GPU_TRUTH_WINDOW_FILE": str(job.window_file)}
        job.proc = subprocess.Popen(
            cmd,
            cwd=HERE.parents[1],
            stdout=job.log,
            stderr=job.err or subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        job.t0 = time.time()
        running.append(job)
        print(f"[{time.strftime('%H:%M:%S')}] start {job.name}", flush=True)

    def finish(job: Job, timed_out: bool) -> None:
        assert job.proc is not None
        job.log.close()
        if job.err:
            job.err.close()
        running.remove(job)
        ws = job.window_start()
        held = f"GPU {time.time() - ws:.0f} s" if ws else "never took the GPU"
        if job.case is not None:
            text = (LOGS / f"{job.name}.log").read_text(errors="replace")
            rec = make_record(
                job.case, text, job.proc.returncode, time.time() - job.t0, probe, timed_out
            )
            (RECORDS / f"{job.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
            what = f"{rec['outcome']} {rec['error_class'] or ''}"
        else:
            stdout = (WORK / "smoke" / f"{job.name}.stdout").read_text(errors="replace")
            run_smoke.collect(job.name.removeprefix("smoke-"), stdout)
            what = f"exit {job.proc.returncode}" + (" (stopped)" if timed_out else "")
        print(
            f"[{time.strftime('%H:%M:%S')}] done {job.name}: {what} "
            f"{time.time() - job.t0:.0f} s ({held})",
            flush=True,
        )
        export(out_dir)

    def stop(job: Job) -> None:
        """Stop a case and its process group (servecheck smoke first gets SIGTERM, on which it
        stops its own child). Its exit frees GPU memory; whoever takes the lock next waits for
        device memory to settle."""
        assert job.proc is not None
        if job.case is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.proc.pid, signal.SIGKILL)
        job.proc.wait()

    def backlog() -> float:
        """Seconds until the GPU is free for a case started now (every running case holds it
        once, one at a time)."""
        total = 0.0
        for j in running:
            ws = j.window_start()
            total += max(5.0, j.window - (time.time() - ws)) if ws else j.window
        return total

    while queue or running:
        for job in list(queue):
            if len(running) >= args.jobs:
                break
            if time.time() + max(PRE_S, backlog()) + job.window > end:
                continue  # does not fit this call; a smaller one later in the queue may
            queue.remove(job)
            start(job)
        if not running:
            break
        time.sleep(1)
        for job in list(running):
            assert job.proc is not None
            ws = job.window_start()
            if job.proc.poll() is not None:
                finish(job, False)
            elif ws and time.time() > ws + TIMEOUT[job.group]:
                print(f"timeout: {job.name}", flush=True)
                stop(job)
                finish(job, True)
            elif time.time() > end + 15:
                # cut off by this call's deadline: no record, so the next call runs it again
                stop(job)
                job.log.close()
                running.remove(job)
                print(f"cut off by the deadline: {job.name}", flush=True)
    export(out_dir)
    print(f"not started: {[j.name for j in queue]}", flush=True)
    n = len(list(RECORDS.glob("*.json"))) + len(list((WORK / "smoke/records").glob("*.json")))
    print(f"records so far: {n}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        sys.exit(child(sys.argv[2]))
    sys.exit(main())
