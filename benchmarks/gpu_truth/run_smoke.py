"""Run `servecheck smoke --record` on the GPU machine and bring the records back.

Runs ON THE GPU MACHINE, from the repository root, after vLLM 0.24.0 is staged and installed
(README.md step 2, calls 1 to 10: stage.sh with every part; the cases here need no stage/cases
folder, only committed files):

    PYTHONPATH=$PWD/src:$HOME/gpu_truth/site python3 benchmarks/gpu_truth/run_smoke.py \
        [--only NAME,NAME] [--deadline 540]

Each case is one `python3 -m servecheck smoke MODEL --gpu auto --record ... -- ARGS`: the
same command a user runs, with servecheck from src/ (no install) and vLLM from the staged site
folder. Records, logs and the JSON output accumulate under ~/gpu_truth/smoke/ (a warm machine
keeps them, so a second call resumes); after every case $OUT/smoke.tar.gz holds all of them.

Back here: unpack, copy records/*.json into tests/data/gpu_truth/, run
`pytest tests/test_gpu_truth.py`, and commit the records (README "Contributing a record").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.path.expanduser("~/gpu_truth/smoke"))
TOKENIZER = "tests/fixtures/tokenizer"
FIXTURES = "tests/fixtures/checkpoints"

# The device's vLLM install has no FlashInfer (its sampler must be off) and no network; DeepGEMM's
# warm-up JIT takes minutes and runs after the KV sizing (README "How a case runs").
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_USE_FLASHINFER_SAMPLER": "0",
    "VLLM_DEEP_GEMM_WARMUP": "skip",
}

# Tiny checkpoints: a fixed KV reservation skips the memory profiling (fast, and exact KV sizing
# from a known budget); 8 greedy tokens.
TINY = [
    "--tokenizer", TOKENIZER, "--max-model-len", "256", "--enforce-eager",
    "--kv-cache-memory-bytes", str(256 * 2**20), "--max-num-seqs", "16",
    "--max-num-batched-tokens", "512",
]  # fmt: skip
# Full-size configs with random weights of the real shapes, alone on the GPU, vLLM's profiling.
DUMMY = ["--load-format", "dummy", "--tokenizer", TOKENIZER]

# (name, model, vllm serve arguments, seconds it may take). Five tiny quantized fixtures of
# three families and four schemes, one that fails as predicted, and two full-size dummy loads
# (eager; and CUDA graphs on an MoE model, which exercises the CUDA-graph rows).
CASES: list[tuple[str, str, list[str], int]] = [
    ("llama-FP8_DYNAMIC", f"{FIXTURES}/llama-FP8_DYNAMIC", TINY, 240),
    ("llama-W4A16", f"{FIXTURES}/llama-W4A16", TINY, 240),
    ("qwen3moe-FP8_BLOCK", f"{FIXTURES}/qwen3moe-FP8_BLOCK", TINY, 300),
    ("glm4moe-W8A8", f"{FIXTURES}/glm4moe-W8A8", TINY, 300),
    ("qwen3moe-NVFP4A16", f"{FIXTURES}/qwen3moe-NVFP4A16", TINY, 300),
    ("llama-MXFP4", f"{FIXTURES}/llama-MXFP4", TINY, 240),
    (
        "llama-bf16-len-above-model",
        f"{FIXTURES}/llama-bf16",
        [*TINY[:2], "--max-model-len", "4096", *TINY[4:]],
        180,
    ),
    (
        "dummy-llama-3.1-8b-len8k",
        "benchmarks/gpu_truth/configs/llama-3.1-8b",
        [*DUMMY, "--max-model-len", "8192", "--gpu-memory-utilization", "0.9", "--enforce-eager"],
        420,
    ),
    (
        "dummy-qwen3-30b-a3b-fp8-graphs",
        "benchmarks/gpu_truth/configs/qwen3-30b-a3b-fp8",
        [*DUMMY, "--max-model-len", "8192", "--gpu-memory-utilization", "0.9"],
        540,
    ),
]


def export(out: Path | None) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "smoke.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as t:
        for sub in ("records", "logs", "json"):
            for p in sorted((WORK / sub).glob("*")):
                t.add(p, arcname=f"{sub}/{p.name}")
    os.replace(tmp, out / "smoke.tar.gz")


def command(name: str, timeout: int | None = None) -> tuple[list[str], int]:
    """The `servecheck smoke` command line of one case (JSON on stdout) and its time limit.
    `timeout` replaces smoke's own limit (run_cases.py's scheduler times the case itself, from
    the moment its engine takes the GPU lock)."""
    model, vllm_args, limit = next((m, a, t) for n, m, a, t in CASES if n == name)
    cmd = [sys.executable, "-m", "servecheck", "smoke", model, "--gpu", "auto"]
    cmd += ["--record", str(WORK / "scratch" / name), "--log", str(WORK / "logs" / f"{name}.log")]
    cmd += ["--timeout", str(timeout or limit - 20), "--format", "json", "--", *vllm_args]
    return cmd, limit


def collect(name: str, stdout: str) -> None:
    """Keep smoke's JSON output and move its record to records/smoke-NAME.json."""
    (WORK / "json" / f"{name}.json").write_text(stdout or "{}")
    for made in (WORK / "scratch" / name).glob("*.json"):  # one record, named after the case
        rec = json.loads(made.read_text())
        rec["record"] = f"smoke-{name}"
        text = json.dumps(rec, indent=1, sort_keys=True) + "\n"
        (WORK / "records" / f"smoke-{name}.json").write_text(text)
        made.unlink()


def prepare_dirs() -> None:
    for sub in ("records", "logs", "json"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)


def done(name: str) -> bool:
    return (WORK / "json" / f"{name}.json").exists()


def env_for() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT / "src"))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--deadline", type=float, default=540, help="seconds from now")
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    end = time.time() + args.deadline
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    prepare_dirs()
    only = {x for x in args.only.split(",") if x}
    env = env_for()
    for name, _model, _vllm_args, _limit in CASES:
        if only and name not in only:
            continue
        if done(name) and not args.rerun:
            continue
        cmd, limit = command(name)
        if time.time() + limit > end:
            print(f"skip {name}: {limit} s would pass the deadline", flush=True)
            continue
        t0 = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[3:])}", flush=True)
        ran = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        collect(name, ran.stdout)
        print(ran.stderr[-1500:], flush=True)
        print(f"  exit {ran.returncode} after {time.time() - t0:.0f} s", flush=True)
        export(out)
    export(out)
    print("records:", sorted(p.name for p in (WORK / "records").glob("*.json")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
