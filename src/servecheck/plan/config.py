"""Planning inputs: the serve options, the vLLM release era, and the tables in memory.toml."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from servecheck.knowledge import load_toml
from servecheck.versions import Release, VllmVersion

GIB = 2**30
MIB = 2**20


@functools.cache
def table() -> dict[str, Any]:
    return load_toml("memory.toml")


@dataclass(frozen=True)
class ServeOptions:
    """The `vllm serve` settings a plan is computed for. None = vLLM's default."""

    max_model_len: int | None = None
    kv_cache_dtype: str = "auto"  # auto | fp8 (fp8_e4m3, fp8_e5m2) | bfloat16 | float16
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    speculative: bool = False  # MTP speculative decoding (loads the MTP layers)
    # Sampling path of the profile run: None = the release's default; "flashinfer" for
    # 0.8-0.23 installs that include FlashInfer (e.g. the official Docker image).
    sampler: str | None = None
    # MoE kernel backend where it changes the allocation (mxfp4: "triton", "marlin",
    # "flashinfer"); None = vLLM's default for the GPU.
    moe_backend: str | None = None
    enable_expert_parallel: bool | None = None  # None = let the planner choose
    # --cpu-offload-gb: GiB of each GPU's decoder-layer weights kept in pinned CPU memory
    cpu_offload_gb: float = 0.0
    # --kv-cache-memory-bytes: a fixed KV cache per GPU (utilization and profiling bypassed)
    kv_cache_memory_bytes: int | None = None
    # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1: a --max-model-len above the model's maximum is allowed
    allow_long_max_model_len: bool = False
    # --disable-sliding-window: the window becomes the maximum context
    disable_sliding_window: bool = False
    # --limit-mm-per-prompt with image and video 0: the vision tower is not built (from the
    # release of feature text_only_skips_tower)
    text_only: bool = False


@dataclass(frozen=True)
class Era:
    """How one range of vLLM releases sizes memory (a memory.toml [[era]] row)."""

    start: str
    engine: str
    gpu_memory_utilization: float
    kv_tokens: str
    activation: str
    sampler: str
    startup_check: bool
    cudagraph_in_budget: bool
    null_block_in_check: bool
    source: str

    @property
    def v0(self) -> bool:
        return self.engine == "V0"


def era_for(version: VllmVersion) -> Era:
    """The era of the requested release (exact ranges), not only the nearest known one."""
    wanted = version.wanted
    rows = sorted(table()["era"], key=lambda r: Release.parse(r["from"]))
    chosen = rows[0]
    for row in rows:
        if Release.parse(row["from"]) <= wanted:
            chosen = row
    return Era(
        start=chosen["from"],
        engine=chosen["engine"],
        gpu_memory_utilization=float(chosen["gpu_memory_utilization"]),
        kv_tokens=chosen["kv_tokens"],
        activation=chosen["activation"],
        sampler=chosen["sampler"],
        startup_check=bool(chosen["startup_check"]),
        cudagraph_in_budget=bool(chosen["cudagraph_in_budget"]),
        null_block_in_check=bool(chosen["null_block_in_check"]),
        source=chosen["source"],
    )


def default_utilization(version: VllmVersion) -> float:
    return era_for(version).gpu_memory_utilization


@dataclass(frozen=True)
class BatchDefaults:
    max_num_batched_tokens: int
    max_num_seqs: int
    source: str


def batch_defaults(
    version: VllmVersion,
    gpu_name: str,
    capability: int | None,
    cuda_total_bytes: int,
    max_model_len: int,
) -> BatchDefaults:
    """max_num_batched_tokens / max_num_seqs as `vllm serve` defaults them for this GPU."""
    era = era_for(version)
    wanted = version.wanted
    if era.v0:
        v0 = table()["v0_scheduler"]
        if max_model_len > v0["chunked_prefill_above_len"]:
            tokens = int(v0["chunked_max_num_batched_tokens"])
        else:
            tokens = max(max_model_len, int(v0["min_max_num_batched_tokens"]))
        return BatchDefaults(tokens, int(v0["max_num_seqs"]), v0["source"])
    name = gpu_name.lower()
    for tier in table()["batch_tier"]:
        if Release.parse(tier["from"]) > wanted:
            continue
        if "until" in tier and Release.parse(tier["until"]) <= wanted:
            continue
        if cuda_total_bytes < tier["min_memory_gib"] * GIB:
            continue
        if any(word in name for word in tier.get("not_names", ())):
            continue
        if capability is not None and capability == tier.get("not_capability"):
            continue
        return BatchDefaults(
            int(tier["max_num_batched_tokens"]), int(tier["max_num_seqs"]), tier["source"]
        )
    raise AssertionError("memory.toml batch_tier has no catch-all row")  # pragma: no cover


def cuda_total_bytes(gpu: Any) -> tuple[int, str]:
    """(CUDA-visible total memory of one GPU, how it was obtained). `gpu` is a hardware Gpu row."""
    cfg = table()["cuda_total"]
    for row in cfg["observed"]:
        if row["gpu"] == gpu.name:
            return round(row["total_gib"] * GIB), f"observed: {row['source']}"
    reserve = round(cfg["reserve_gib"] * GIB)
    if gpu.reported_memory_bytes is not None:
        return gpu.reported_memory_bytes - reserve, (
            f"nvidia-smi total {gpu.nvml_memory_mib} MiB minus {cfg['reserve_gib']} GiB"
        )
    return gpu.marketed_memory_bytes - reserve, (
        f"marketed {gpu.memory_gib:g} GiB minus {cfg['reserve_gib']} GiB "
        "(no nvidia-smi total known)"
    )


def requested_bytes(total: int, utilization: float) -> int:
    # vLLM 0.33 v1/worker/utils.py request_memory: math.ceil(total * utilization)
    return math.ceil(total * utilization)


def default_block_size(is_mla: bool, capability: int | None) -> int:
    cfg = table()["block_size"]
    if is_mla and capability is not None:
        for row in cfg.get("mla", ()):
            if capability // 10 == row["capability_major"]:
                return int(row["block_size"])
    return int(cfg["default"])
