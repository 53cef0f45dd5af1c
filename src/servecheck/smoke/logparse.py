"""Read what vLLM logged while it started: kernels, backends, memory figures, the root error.

One parser for `servecheck smoke` and the GPU-truth harness (benchmarks/gpu_truth/). Standard
library only: the harness imports it on a GPU machine where servecheck is not installed.

    parse_log(text)  -> dict: selected kernels, MoE backends, attention backends, memory lines,
                        CUDA-graph lines, warnings, an excerpt, the root error line, and the JSON
                        lines the smoke child printed (env, args, result)
    status_of(line)  -> a short phrase for the live status ("loading shards 2/5"), or None

The lines are vLLM's INFO messages (vLLM 0.24 and 0.32 wording; each regex names its source).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# "(EngineCore_DP0 pid=1) INFO 11-27 10:00:00 [file.py:12] msg" -> level "INFO", body "msg"
PREFIX = re.compile(
    r"^(?:\([^()]*pid=\d+\)\s*)?(?:\[rank\d+\]:\s*)?"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+"
    r"(?P<origin>\[[^\]]+\]\s?)?"
)
# What the child prints (servecheck.smoke.child); GPU_TRUTH_ is the harness's older spelling.
MARKER = re.compile(r"^(?:SERVECHECK|GPU_TRUTH)_(?P<kind>[A-Z]+) (?P<json>\{.*\})\s*$")

RX = {
    # vLLM 0.24 model_executor/kernels/linear/__init__.py choose_*_kernel
    "selected": re.compile(r"Selected (\S+) for (\S+)"),
    # vLLM 0.24 fused_moe/oracle/*.py select_*_moe_backend
    "moe_backend": re.compile(r"Using '?([A-Za-z0-9_]+)'? ([A-Za-z0-9 ]*?)MoE backend"),
    # vLLM 0.24 platforms/cuda.py get_attn_backend_cls
    "attention": re.compile(r"Using (\S+) (?:attention )?backend\b"),
    # vLLM 0.24 v1/worker/gpu_model_runner.py load_model
    "model_loading": re.compile(
        r"Model loading took ([0-9.]+) GiB(?: memory)? and ([0-9.]+) seconds"
    ),
    # vLLM 0.24 v1/worker/gpu_worker.py determine_available_memory
    "kv_mem": re.compile(r"Available KV cache memory: ([0-9.]+) GiB"),
    "kv_reserved": re.compile(r"reserved ([0-9.]+) GiB memory for KV Cache"),
    # vLLM 0.32 v1/worker/cpu_worker.py determine_available_memory ("Explicitly set (1.0/9.46)")
    "kv_cpu": re.compile(r"(?:Explicitly|Auto) set \(([0-9.]+)/[0-9.]+\) GiB for KV cache"),
    # vLLM 0.24 v1/core/kv_cache_utils.py _report_kv_cache_config (GPU; CPU in 0.32)
    "kv_tokens": re.compile(r"(?:GPU|CPU) KV cache size: ([0-9,]+) tokens"),
    "concurrency": re.compile(r"Maximum concurrency for ([0-9,]+) tokens per request: ([0-9.]+)x"),
    # vLLM 0.24 v1/worker/gpu_model_runner.py capture_model / profile_cudagraph_memory
    "graph_capture": re.compile(r"Graph capturing finished in ([0-9.]+) secs, took ([0-9.]+) GiB"),
    "graph_estimate": re.compile(r"Estimated CUDA graph memory: ([0-9.]+) GiB"),
    # vLLM 0.24 v1/worker/gpu_worker.py compile_or_warm_up_model
    "graph_pool": re.compile(
        r"CUDA graph pool memory: ([0-9.]+) GiB \(actual\), ([0-9.]+) GiB \(estimated\)"
    ),
    "fa_version": re.compile(r"Using FlashAttention version (\d+)"),
    # vLLM 0.24 v1/engine/core.py _initialize_kv_caches
    "init_engine": re.compile(
        r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+)"
    ),
    "architecture": re.compile(r"Resolved architecture: (\S+)"),
    # vLLM 0.24 v1/engine/core.py: "Initializing a V1 LLM engine (v0.24.0) with config: ..."
    "engine_quant": re.compile(r"Initializing a V1 LLM engine .*?\bquantization=([\w.-]+)"),
    "shards": re.compile(r"Loading \S+ checkpoint shards:\s+(\d+)% Completed \| (\d+)/(\d+)"),
}
RELEVANT = re.compile(
    r"Selected |MoE backend|[Bb]ackend|[Kk]ernel|Model loading took|KV cache|Maximum concurrency|"
    r"CUDA graph|Graph capturing|quantiz|Marlin|DeepGEMM|CUTLASS|Triton|FlashInfer|not support|"
    r"Error|error|Exception|init engine|Resolved architecture|dtype"
)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def split_line(raw: str) -> tuple[str, str, str]:
    """(level, origin, message) of one log line: ("INFO", "[core.py:114]", "Initializing ...");
    level and origin "" for lines vLLM's logger did not write."""
    line = ANSI.sub("", raw).rstrip()
    m = PREFIX.match(line)
    if m is None:
        return "", "", line
    return m.group("level"), (m.group("origin") or "").strip(), line[m.end() :]


def _lines(text: str) -> list[str]:
    # progress bars rewrite their line with carriage returns: each state is a line of its own
    return [x for chunk in text.splitlines() for x in chunk.split("\r")]


def parse_log(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "selected": [],
        "moe_backends": [],
        "attention_backends": [],
        "warnings": [],
        "excerpt": [],
        "child": {},
    }
    mem: dict[str, Any] = {}
    graphs: dict[str, Any] = {}
    seen: set[str] = set()
    tb_tail: list[str] = []
    in_tb = False
    for raw in _lines(text):
        level, origin, body = split_line(raw)
        plain = ANSI.sub("", raw).rstrip()
        if m := MARKER.match(plain):
            with contextlib.suppress(ValueError):
                out["child"][m.group("kind").lower()] = json.loads(m.group("json"))
            continue
        if level:  # vLLM's logger lines only, not tracebacks quoting its source
            _facts(body, out, mem, graphs)
        if level == "WARNING" and body not in out["warnings"] and len(out["warnings"]) < 40:
            out["warnings"].append(body[:600])
        if plain.startswith("Traceback"):
            in_tb, tb_tail = True, []
        if in_tb:
            tb_tail.append(plain)
        if plain.startswith(("Traceback", "During handling")):
            continue
        keep = RELEVANT.search(body) and body not in seen and not plain.startswith("  ")
        if keep and len(out["excerpt"]) < 120:
            seen.add(body)
            shown = " ".join(x for x in (level, origin, body) if x)
            out["excerpt"].append(shown[:800])
    if "model_loading_gib" in mem:
        out.setdefault("model_runner", "V1")  # 0.24 logs only "Using V2 Model Runner"
    out["memory"] = mem
    out["graphs"] = graphs
    # the last line of the last traceback: "ValueError: ..."
    root = [x for x in tb_tail if EXCEPTION_LINE.match(x)]
    out["root_error_line"] = root[-1][:2000] if root else None
    return out


def _facts(body: str, out: dict[str, Any], mem: dict[str, Any], graphs: dict[str, Any]) -> None:
    """Record what one message says about kernels, memory and CUDA graphs."""
    if m := RX["selected"].search(body):
        item = {"kernel": m.group(1), "for": m.group(2)}
        if item not in out["selected"]:
            out["selected"].append(item)
    if "MoE backend" in body and body not in out["moe_backends"]:
        out["moe_backends"].append(body)
    m = RX["attention"].search(body)
    if m and "MoE" not in body and m.group(1) not in out["attention_backends"]:
        out["attention_backends"].append(m.group(1))
    if m := RX["architecture"].search(body):
        out["architecture"] = m.group(1)
    if m := RX["engine_quant"].search(body):
        out["quantization"] = None if m.group(1) == "None" else m.group(1)
    if m := RX["model_loading"].search(body):
        mem["model_loading_gib"] = float(m.group(1))
        mem["model_loading_s"] = float(m.group(2))
    if m := RX["kv_mem"].search(body):
        mem["available_kv_gib"] = float(m.group(1))
    if m := RX["kv_reserved"].search(body) or RX["kv_cpu"].search(body):
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


# ------------------------------------------------------------------------- live status ----

STAGES = {
    "starting": "starting vLLM",
    "loading": "building the engine",
    "generating": "generating",
    "done": "stopping",
}
_STATUS: tuple[tuple[re.Pattern[str], str], ...] = (
    (RX["architecture"], "architecture {0}"),
    (re.compile(r"Starting to load model"), "loading the model"),
    (RX["shards"], "loading shards {1}/{2}"),
    (RX["model_loading"], "weights loaded ({0} GiB)"),
    (
        re.compile(r"Memory profiling|profile run|Compile and warming up|Warming up model"),
        "profiling",
    ),
    (RX["kv_mem"], "KV cache {0} GiB"),
    (RX["kv_tokens"], "KV cache {0} tokens"),
    (re.compile(r"Capturing CUDA graphs?"), "capturing CUDA graphs"),
    (RX["graph_capture"], "CUDA graphs captured ({1} GiB)"),
    (RX["init_engine"], "engine ready"),
    (re.compile(r"^Traceback"), "failing"),
)


def status_of(raw: str) -> str | None:
    """A short phrase saying what vLLM is doing, when this line marks a new step."""
    plain = ANSI.sub("", raw).strip()
    if m := MARKER.match(plain):
        if m.group("kind") == "STAGE":
            try:
                return STAGES.get(json.loads(m.group("json")).get("stage"))
            except ValueError:
                return None
        return None
    body = split_line(plain)[2]
    for pattern, phrase in _STATUS:
        if m := pattern.search(body):
            return phrase.format(*m.groups())
    return None
