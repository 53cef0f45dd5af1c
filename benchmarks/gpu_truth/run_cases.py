"""Run the GPU-truth cases with a real CUDA vLLM and write one JSON record per case.

Runs on the GPU machine (see README.md), from the repository root:

    PYTHONPATH=~/gpu_truth/site python3 benchmarks/gpu_truth/run_cases.py --deadline 540

Each case runs in its own subprocess (``run_cases.py child CASE``) with a timeout, with
VLLM_LOGGING_LEVEL=INFO; its log is captured and parsed. Tiny cases ("tiny" group) run several at
a time; full-size dummy loads ("full" group) run one at a time, alone on the GPU, after them.
Records and logs accumulate under ~/gpu_truth/{records,logs} (a warm machine keeps them between
calls, so a second call resumes where the first stopped); after every case the records are
copied to $OUT (one tar when more than 8) and the logs tarred to $OUT/logs.tar.gz.

Standard library only in the parent; the child imports vllm.
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
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cases as case_table  # noqa: E402

WORK = Path(os.path.expanduser("~/gpu_truth"))
RECORDS = WORK / "records"
LOGS = WORK / "logs"
MARK_RESULT = "GPU_TRUTH_RESULT "
MARK_ENV = "GPU_TRUTH_ENV "

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
ESTIMATE = {"tiny": 60, "full": 90}  # seconds, to decide whether a case still fits the deadline


# ------------------------------------------------------------------------- child ----


def _introspect(model: Any) -> list[dict[str, Any]]:
    """Per-module quant method / scheme / kernel / backend, grouped by identical description."""
    import enum

    def describe_obj(obj: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for attr, val in sorted(vars(obj).items()):
            low = attr.lower()
            if val is None or (isinstance(val, (int, float, bool, str)) and "backend" not in low):
                continue
            tname = type(val).__name__
            if isinstance(val, enum.Enum):
                if any(k in low for k in ("backend", "kernel", "strategy", "type", "mode")):
                    out[attr] = str(val)
            elif isinstance(val, str):
                out[attr] = val
            elif isinstance(val, type):
                if any(k in low for k in ("backend", "kernel", "impl", "cls")):
                    out[attr] = val.__name__
            elif any(k in low for k in ("kernel", "backend", "experts", "impl", "linear")) or (
                "Kernel" in tname or "Experts" in tname or "Backend" in tname
            ):
                out[attr] = tname
                if "Kernel" in tname or "Experts" in tname:
                    inner = getattr(val, "fused_experts", None) or getattr(val, "experts", None)
                    if inner is not None and not isinstance(inner, (list, tuple)):
                        out[attr + ".experts"] = type(inner).__name__
        return out

    groups: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        qm = getattr(mod, "quant_method", None)
        desc: dict[str, Any] = {"layer_class": type(mod).__name__}
        if qm is not None:
            desc["quant_method"] = type(qm).__name__
            desc["quant_method_attrs"] = describe_obj(qm)
            scheme = getattr(mod, "scheme", None)
            if scheme is not None:
                desc["scheme"] = type(scheme).__name__
                desc["scheme_attrs"] = describe_obj(scheme)
        elif hasattr(mod, "attn_backend") or hasattr(mod, "impl"):
            pass
        else:
            continue
        if hasattr(mod, "attn_backend"):
            ab = mod.attn_backend
            desc["attn_backend"] = getattr(ab, "__name__", type(ab).__name__)
            if hasattr(mod, "impl"):
                desc["attn_impl"] = type(mod.impl).__name__
            if hasattr(mod, "kv_cache_dtype"):
                desc["kv_cache_dtype"] = str(mod.kv_cache_dtype)
        w = getattr(mod, "weight", None)
        if w is not None and hasattr(w, "dtype"):
            desc["weight_dtype"] = str(w.dtype).replace("torch.", "")
        key = json.dumps(desc, sort_keys=True)
        g = groups.setdefault(key, {**desc, "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < 4:
            g["examples"].append(name)
    return list(groups.values())


def _worker_memory(worker: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    worker = getattr(worker, "worker", None) or worker  # WorkerWrapperBase -> Worker
    mr = getattr(worker, "model_runner", None)
    for obj, attrs in (
        (mr, ("model_memory_usage",)),
        (
            worker,
            (
                "available_kv_cache_memory_bytes",
                "requested_memory",
                "non_torch_memory",
                "peak_activation_memory",
                "cudagraph_memory_estimate",
            ),
        ),
    ):
        for a in attrs:
            v = getattr(obj, a, None) if obj is not None else None
            if isinstance(v, (int, float)):
                out[a] = int(v)
    snap = getattr(worker, "init_snapshot", None)
    if snap is not None:
        for a in ("total_memory", "free_memory", "cuda_memory", "torch_memory"):
            v = getattr(snap, a, None)
            if isinstance(v, (int, float)):
                out["init_" + a] = int(v)
    return out


def child(name: str) -> int:
    case = case_table.by_name()[name]
    env_info: dict[str, Any] = {}
    try:
        import torch

        env_info = {
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "gpu_name": torch.cuda.get_device_name(0),
            "capability": list(torch.cuda.get_device_capability(0)),
            "gpu_total_bytes": torch.cuda.get_device_properties(0).total_memory,
            "free_bytes_at_start": torch.cuda.mem_get_info()[0],
        }
        import vllm

        env_info["vllm"] = vllm.__version__
        for mod in ("flashinfer", "deep_gemm", "triton_kernels", "vllm.third_party.deep_gemm"):
            try:
                __import__(mod)
                env_info["has_" + mod] = True
            except Exception as e:
                env_info["has_" + mod] = f"{type(e).__name__}: {str(e)[:120]}"
    except Exception as e:
        env_info["probe_error"] = repr(e)
    print(MARK_ENV + json.dumps(env_info), flush=True)

    result: dict[str, Any] = {"outcome": None}
    t0 = time.time()
    try:
        from vllm import LLM, SamplingParams

        kwargs = dict(case["llm"])
        if case.get("tokenizer"):
            kwargs["tokenizer"] = case["tokenizer"]
        llm = LLM(model=case["model"], **kwargs)
        result["init_s"] = round(time.time() - t0, 2)
        result["outcome"] = "loaded"
        try:
            result["modules"] = llm.apply_model(_introspect)[0]
        except Exception as e:
            result["modules_error"] = repr(e)[:400]
        try:
            result["memory_exact"] = llm.collective_rpc(_worker_memory)[0]
        except Exception as e:
            result["memory_exact_error"] = repr(e)[:400]
        try:
            cc = llm.llm_engine.vllm_config.cache_config
            comp = llm.llm_engine.vllm_config.compilation_config
            result["cache_config"] = {
                "num_gpu_blocks": cc.num_gpu_blocks,
                "block_size": cc.block_size,
                "cache_dtype": str(cc.cache_dtype),
            }
            result["cudagraph_mode"] = str(comp.cudagraph_mode)
        except Exception as e:
            result["cache_config_error"] = repr(e)[:400]
        if case.get("generate"):
            sp = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
            out = llm.generate(["Hello world"], sp, use_tqdm=False)
            result["generated"] = {
                "token_ids": list(out[0].outputs[0].token_ids),
                "text": out[0].outputs[0].text,
            }
    except BaseException as e:
        result["outcome"] = "failed" if result["outcome"] is None else "failed_after_load"
        chain = []
        cur: BaseException | None = e
        while cur is not None and len(chain) < 6:
            chain.append({"class": type(cur).__name__, "message": str(cur)[:2000]})
            cur = cur.__cause__ or cur.__context__
        tb = traceback.extract_tb(e.__traceback__)
        result["error"] = {
            "class": type(e).__name__,
            "module": type(e).__module__,
            "message": str(e)[:4000],
            "chain": chain,
            "raised_at": [
                f"{Path(f.filename).as_posix().split('site-packages/')[-1].split('/site/')[-1]}"
                f":{f.lineno} {f.name}"
                for f in tb[-6:]
            ],
        }
        traceback.print_exc()
    result["wall_s"] = round(time.time() - t0, 2)
    print(MARK_RESULT + json.dumps(result, default=str), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip vLLM's atexit teardown: its failures would only add noise


# ------------------------------------------------------------------------ parsing ----

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RX = {
    "selected": re.compile(r"Selected (\S+) for (\S+)"),
    "moe_backend": re.compile(r"Using (?:'?)([A-Za-z0-9_]+)(?:'?) ([A-Za-z0-9 ]*?)MoE backend"),
    "attention": re.compile(r"Using (\S+) (?:attention )?backend\b(?!.*MoE)"),
    "model_loading": re.compile(
        r"Model loading took ([0-9.]+) GiB(?: memory)? and ([0-9.]+) seconds"
    ),
    "kv_mem": re.compile(r"Available KV cache memory: ([0-9.]+) GiB"),
    "kv_reserved": re.compile(r"reserved ([0-9.]+) GiB memory for KV Cache"),
    "kv_tokens": re.compile(r"GPU KV cache size: ([0-9,]+) tokens"),
    "concurrency": re.compile(r"Maximum concurrency for ([0-9,]+) tokens per request: ([0-9.]+)x"),
    "graph_capture": re.compile(r"Graph capturing finished in ([0-9.]+) secs, took ([0-9.]+) GiB"),
    "graph_estimate": re.compile(r"Estimated CUDA graph memory: ([0-9.]+) GiB"),
    "graph_pool": re.compile(
        r"CUDA graph pool memory: ([0-9.]+) GiB \(actual\), ([0-9.]+) GiB \(estimated\)"
    ),
    "fa_version": re.compile(r"Using FlashAttention version (\d+)"),
    "init_engine": re.compile(
        r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+)"
    ),
}
RELEVANT = re.compile(
    r"Selected |MoE backend|[Bb]ackend|[Kk]ernel|Model loading took|KV cache|Maximum concurrency|"
    r"CUDA graph|Graph capturing|quantiz|Marlin|DeepGEMM|CUTLASS|Triton|FlashInfer|not support|"
    r"Error|error|Exception|init engine|Resolved architecture|dtype"
)


def _strip(line: str) -> str:
    line = ANSI.sub("", line).rstrip()
    # "(EngineCore pid=1) INFO 11-27 10:00:00 [file.py:12] msg" -> "INFO [file.py:12] msg"
    return re.sub(
        r"^(?:\(\S+(?: pid=\d+)?\) )?(\w+) \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ", r"\1 ", line
    )


def parse_log(text: str) -> dict[str, Any]:
    lines = [_strip(x) for x in text.splitlines()]
    out: dict[str, Any] = {
        "selected": [],
        "moe_backends": [],
        "attention_backends": [],
        "warnings": [],
        "excerpt": [],
    }
    mem: dict[str, Any] = {}
    graphs: dict[str, Any] = {}
    seen: set[str] = set()
    tb_tail: list[str] = []
    in_tb = False
    for ln in lines:
        body = re.sub(r"^\w+ \[[^\]]+\] ", "", ln)
        if m := RX["selected"].search(body):
            item = {"kernel": m.group(1), "for": m.group(2)}
            if item not in out["selected"]:
                out["selected"].append(item)
        if "MoE backend" in body and body not in out["moe_backends"]:
            out["moe_backends"].append(body)
        m = RX["attention"].search(body)
        if m and "MoE" not in body and m.group(1) not in out["attention_backends"]:
            out["attention_backends"].append(m.group(1))
        if m := RX["model_loading"].search(body):
            mem["model_loading_gib"] = float(m.group(1))
            mem["model_loading_s"] = float(m.group(2))
        if m := RX["kv_mem"].search(body):
            mem["available_kv_gib"] = float(m.group(1))
        if m := RX["kv_reserved"].search(body):
            mem["kv_reserved_gib"] = float(m.group(1))
        if m := RX["kv_tokens"].search(body):
            mem["kv_tokens"] = int(m.group(1).replace(",", ""))
        if m := RX["concurrency"].search(body):
            mem["max_concurrency"] = {
                "tokens_per_request": int(m.group(1).replace(",", "")),
                "x": float(m.group(2)),
            }
        if m := RX["graph_capture"].search(body):
            graphs["capture_s"] = float(m.group(1))
            graphs["capture_gib"] = float(m.group(2))
        if m := RX["graph_estimate"].search(body):
            graphs["estimated_gib"] = float(m.group(1))
        if m := RX["graph_pool"].search(body):
            graphs["pool_actual_gib"] = float(m.group(1))
            graphs["pool_estimated_gib"] = float(m.group(2))
        if m := RX["fa_version"].search(body):
            out["flash_attn_version"] = int(m.group(1))
        if "Using V2 Model Runner" in body:
            out["model_runner"] = "V2"
        if m := RX["init_engine"].search(body):
            mem["init_engine_s"] = float(m.group(1))
        if ln.startswith("WARNING") and body not in out["warnings"] and len(out["warnings"]) < 40:
            out["warnings"].append(body[:600])
        if ln.startswith("Traceback"):
            in_tb, tb_tail = True, []
        if in_tb:
            tb_tail.append(ln)
        if ln.startswith(("GPU_TRUTH_", "Traceback", "During handling")):
            continue
        keep = RELEVANT.search(body) and body not in seen and not ln.startswith("  ")
        if keep and len(out["excerpt"]) < 120:
            seen.add(body)
            out["excerpt"].append(ln[:800])
    if "model_loading_gib" in mem:
        out.setdefault("model_runner", "V1")  # 0.24 logs only "Using V2 Model Runner"
    out["memory"] = mem
    out["graphs"] = graphs
    # the last line of the last traceback: "ValueError: ..."
    root = [x for x in tb_tail if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", x)]
    out["root_error_line"] = root[-1][:2000] if root else None
    return out


# ------------------------------------------------------------------------- parent ----


def env_probe() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        q = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,driver_version,compute_cap",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["nvidia_smi"] = q.stdout.strip()
        v = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        if m := re.search(r"CUDA Version: ([0-9.]+)", v):
            info["driver_cuda"] = m.group(1)
    except Exception as e:
        info["nvidia_smi_error"] = repr(e)
    info["python"] = sys.version.split()[0]
    return info


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
    env_info: dict[str, Any] = {}
    result: dict[str, Any] = {}
    for ln in log_text.splitlines():
        if ln.startswith(MARK_ENV):
            env_info = json.loads(ln[len(MARK_ENV) :])
        elif ln.startswith(MARK_RESULT):
            result = json.loads(ln[len(MARK_RESULT) :])
    parsed = parse_log(log_text)
    outcome = result.get("outcome")
    if timed_out:
        outcome = "timeout"
    elif outcome is None:
        outcome = "crashed"
    cap = env_info.get("capability")
    err = result.get("error")
    rec: dict[str, Any] = {
        "schema": 1,
        "case": case["name"],
        "kind": case["kind"],
        "note": case.get("note", ""),
        "model": case["model"],
        "source": case.get("source") or case.get("config_source"),
        "build": case.get("build"),
        "tokenizer": case.get("tokenizer"),
        "llm_kwargs": case["llm"],
        "generate": case.get("generate", False),
        "env": {k: v for k, v in CHILD_ENV.items() if k.startswith("VLLM_")},
        "vllm_version": env_info.get("vllm"),
        "torch_version": env_info.get("torch"),
        "cuda_version": env_info.get("torch_cuda"),
        "driver": probe,
        "gpu": {
            "name": env_info.get("gpu_name"),
            "capability": f"{cap[0]}.{cap[1]}" if cap else None,
            "capability_int": cap[0] * 10 + cap[1] if cap else None,
            "total_bytes": env_info.get("gpu_total_bytes"),
            "free_bytes_at_start": env_info.get("free_bytes_at_start"),
        },
        "packages": {k[4:]: v for k, v in env_info.items() if k.startswith("has_")},
        "outcome": outcome,
        "exit_code": rc,
        "error_class": err["class"] if err else None,
        "error_message": err["message"] if err else None,
        "root_error_line": parsed["root_error_line"],
        "error": err,
        "kernels": {
            "selected": parsed["selected"],
            "moe_backends": parsed["moe_backends"],
            "attention_backends": parsed["attention_backends"],
            "flash_attn_version": parsed.get("flash_attn_version"),
            "model_runner": parsed.get("model_runner"),
        },
        "modules": result.get("modules"),
        "memory": {
            **parsed["memory"],
            "exact": result.get("memory_exact"),
            "cache_config": result.get("cache_config"),
        },
        "cuda_graphs": {
            "enabled": not case["llm"].get("enforce_eager", False),
            "cudagraph_mode": result.get("cudagraph_mode"),
            **parsed["graphs"],
        },
        "generated": result.get("generated"),
        "warnings": parsed["warnings"],
        "log_excerpt": parsed["excerpt"],
        "wall_s": round(wall, 1),
    }
    for k in ("modules_error", "memory_exact_error", "cache_config_error"):
        if k in result:
            rec[k] = result[k]
    return rec


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
