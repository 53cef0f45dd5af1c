"""What vLLM reserves besides weights and KV cache, per GPU.

Each term names where vLLM measures it and how servecheck estimates it (memory.toml):

- activation peak of the profiling run: vLLM 0.33 v1/worker/gpu_model_runner.py profile_run
  (a forward pass of max_num_batched_tokens dummy tokens, then _dummy_sampler_run on
  min(max_num_seqs, max_num_batched_tokens) requests); measured by utils/mem_utils.py
  memory_profiling as the torch peak above what stays allocated. Estimated from the logits and
  hidden-state sizes with coefficients fit to public logs.
- non-torch memory growth after the start-up snapshot (cuBLAS workspaces, custom all-reduce
  and NCCL buffers): memory_profiling's non_torch_increase. Calibrated constants.
- CUDA-graph memory (0.21+ subtracts an estimate): gpu_model_runner.py
  profile_cudagraph_memory. Rough estimate, not calibrated.
- start-up use before the snapshot (CUDA context, NCCL communicators): not in the KV budget, but
  vLLM refuses to start when `total x utilization` exceeds the free memory it leaves
  (v1/worker/utils.py request_memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.model.config import ModelConfig
from servecheck.plan.config import GIB, MIB, Era, table
from servecheck.plan.layouts import Layout
from servecheck.versions import parse_version


@dataclass(frozen=True)
class Overheads:
    activation: int
    non_torch: int
    cudagraph: int  # subtracted from the KV budget only when the era says so
    cudagraph_in_budget: bool
    startup_used: int  # before the snapshot; checked against utilization, not subtracted

    @property
    def in_budget(self) -> int:
        return (
            self.activation + self.non_torch + (self.cudagraph if self.cudagraph_in_budget else 0)
        )


def forward_bytes_per_token(cfg: ModelConfig, layout: Layout, dtype_bytes: int) -> int:
    """Activations per token at the widest point of a decoder layer (calibrated copies)."""
    act = table()["activation"]
    tp = layout.tp
    widths = []
    if cfg.intermediate_size:
        widths.append(act["forward_intermediate_copies"] * cfg.intermediate_size / tp)
    if cfg.is_moe and cfg.moe_intermediate_size:
        # fused_moe intermediate caches: [tokens, top_k, 2I/tp], [tokens*top_k, I/tp], [tokens,
        # top_k, hidden] (vLLM 0.33 fused_moe/fused_moe.py fused_experts_impl)
        i_rank = cfg.moe_intermediate_size / (1 if layout.ep else tp)
        widths.append(cfg.num_experts_per_tok * (3 * i_rank + cfg.hidden_size))
    widest = max(widths, default=0.0)
    return int((act["forward_hidden_copies"] * cfg.hidden_size + widest) * dtype_bytes)


def activation_peak(
    cfg: ModelConfig,
    layout: Layout,
    era: Era,
    *,
    batched_tokens: int,
    num_seqs: int,
    dtype_bytes: int,
    last_stage: bool,
    sampler: str | None = None,
) -> int:
    act = table()["activation"]
    forward = batched_tokens * forward_bytes_per_token(cfg, layout, dtype_bytes)
    if not last_stage:
        return forward
    num_reqs = min(num_seqs, batched_tokens)
    # logits are gathered to the full vocabulary on every TP rank (vLLM 0.33
    # model_executor/layers/logits_processor.py _gather_logits) and sampled in fp32
    copies = act[f"sampler_fp32_copies_{sampler or era.sampler}"]
    peak = copies * num_reqs * cfg.vocab_size * 4
    peak += act["hidden_copies"] * batched_tokens * cfg.hidden_size * dtype_bytes
    return int(max(forward, peak))


def _cublas_before_snapshot(era: Era) -> float:
    cfg = table()["non_torch"]
    if parse_version(era.start) >= parse_version(cfg["cublas_before_snapshot_from"]):
        return float(cfg["cublas_gib"])
    return 0.0


def non_torch(era: Era, layout: Layout) -> int:
    cfg = table()["non_torch"]
    if era.v0:
        return round(cfg["v0_gib"] * GIB)
    extra = cfg["v1_multi_extra_gib"] if layout.world > 1 else 0.0
    single = max(cfg["v1_single_gib"] - _cublas_before_snapshot(era), 0.0)
    return round((single + extra) * GIB)


def startup_used(layout: Layout, era: Era) -> int:
    cfg = table()["startup"]
    extra = cfg["multi_gpu_extra_gib"] if layout.world > 1 else 0.0
    return round((cfg["context_gib"] + extra + _cublas_before_snapshot(era)) * GIB)


def cudagraph_estimate(cfg: ModelConfig, *, layers: int, enforce_eager: bool) -> int:
    """CUDA-graph memory of one GPU running `layers` decoder layers (memory.toml [cudagraph])."""
    if enforce_eager or layers <= 0:
        return 0
    cg = table()["cudagraph"]
    if cfg.is_moe:
        per_layer = cg["moe_layer_mib"] + cg["moe_layer_mib_per_expert"] * cfg.num_experts
    else:
        per_layer = (
            cg["dense_layer_mib"] + cg["dense_layer_mib_per_1024_hidden"] * cfg.hidden_size / 1024
        )
    return int(per_layer * layers * MIB)


def overheads(
    cfg: ModelConfig,
    layout: Layout,
    era: Era,
    *,
    batched_tokens: int,
    num_seqs: int,
    dtype_bytes: int,
    last_stage: bool,
    enforce_eager: bool,
    layers: int,
    sampler: str | None = None,
) -> Overheads:
    return Overheads(
        activation=activation_peak(
            cfg,
            layout,
            era,
            batched_tokens=batched_tokens,
            num_seqs=num_seqs,
            dtype_bytes=dtype_bytes,
            last_stage=last_stage,
            sampler=sampler,
        ),
        non_torch=non_torch(era, layout),
        cudagraph=cudagraph_estimate(cfg, layers=layers, enforce_eager=enforce_eager),
        cudagraph_in_budget=era.cudagraph_in_budget and not enforce_eager,
        startup_used=startup_used(layout, era),
    )
