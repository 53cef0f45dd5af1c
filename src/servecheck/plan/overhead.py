"""What vLLM reserves besides weights and KV cache, per GPU.

Each term names where vLLM measures it and how servecheck estimates it (memory.toml):

- activation peak of the profiling run: vLLM 0.24 v1/worker/gpu_worker.py
  determine_available_memory runs model_runner.profile_run inside utils/mem_utils.py
  memory_profiling, which resets torch's peak statistics first, so the peak is everything torch
  allocates during the run above what was allocated before it. The run is a forward pass of
  max_num_batched_tokens dummy tokens, then a sampler warm-up on min(max_num_seqs, tokens)
  requests. servecheck adds up the tensors alive at the two candidate peaks (``profile_peak``):
  buffers the run allocates and keeps (cuBLAS workspace, fused-MoE workspace and permute
  scratch), plus the larger of the forward pass's transient activations and the sampler's
  working set (hidden states held by profile_run, model-dtype logits, fp32 copies). Which model
  runner does the run (V1 or V2) depends on the release and the architecture
  (vllm_versions.toml model_runner_v2_archs); the fp32 copy counts come from a device probe
  and the GPU-truth and llm-d records (memory.toml [activation]).
- non-torch memory growth after the start-up snapshot (cuBLAS handles, CUDA modules, custom
  all-reduce and NCCL buffers): memory_profiling's non_torch_increase. Measured constants per
  release range.
- CUDA-graph memory (0.21+ subtracts an estimate): gpu_model_runner.py
  profile_cudagraph_memory; 0.24's V2 runner returns 0. Rough per-layer estimate.
- start-up use before the snapshot (CUDA context, NCCL communicators): not in the KV budget, but
  vLLM refuses to start when `total x utilization` exceeds the free memory it leaves
  (v1/worker/utils.py request_memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from servecheck.model.config import ModelConfig
from servecheck.plan.config import GIB, MIB, Era, table
from servecheck.plan.layouts import Layout
from servecheck.versions import Release, VllmVersion


@dataclass(frozen=True)
class Overheads:
    activation: int
    non_torch: int
    cudagraph: int  # subtracted from the KV budget only when cudagraph_in_budget
    cudagraph_in_budget: bool
    startup_used: int  # before the snapshot; checked against utilization, not subtracted
    runner: str = "V1"  # vLLM's GPU model runner for the profile run: V0, V1 or V2
    parts: tuple[tuple[str, int], ...] = ()  # the activation peak's terms (explain / JSON)

    @property
    def in_budget(self) -> int:
        return (
            self.activation + self.non_torch + (self.cudagraph if self.cudagraph_in_budget else 0)
        )


@dataclass(frozen=True)
class ProfileRun:
    """The profile run of one GPU of one pipeline stage, as vLLM sizes it."""

    batched_tokens: int  # max_num_batched_tokens: the forward pass's tokens
    num_seqs: int  # max_num_seqs: the sampler warm-up runs min(num_seqs, tokens) requests
    dtype_bytes: int  # model dtype
    last_stage: bool  # only the last pipeline stage computes logits and samples
    enforce_eager: bool
    layers: int  # decoder layers on this GPU
    moe_layers: int | None = None  # fused-MoE layers among them (None: all, for an MoE model)
    capability: int | None = None  # the GPU's compute capability
    moe_experts: str | None = None  # vLLM's experts class for the fused-MoE layers
    sampler: str | None = None  # ServeOptions.sampler override (V1 runner paths)


def model_runner(cfg: ModelConfig, era: Era, version: VllmVersion | None) -> str:
    """V0, V1 or V2: vLLM 0.24 config/vllm.py use_v2_model_runner (default architectures)."""
    if era.v0:
        return "V0"
    if version is None:
        return "V1"
    archs = version.feature("model_runner_v2_archs") or []
    return "V2" if "*" in archs or cfg.architecture in archs else "V1"


def expert_intermediate(cfg: ModelConfig) -> int:
    """Intermediate size of one routed expert (Mixtral and gpt-oss use intermediate_size)."""
    return cfg.moe_intermediate_size or cfg.intermediate_size


def dense_intermediate(cfg: ModelConfig) -> int:
    """Intermediate size of the dense MLP layers, 0 when every layer is a fused MoE.

    Dense layers exist in a dense model, in the first_k_dense_replace layers (DeepSeek, GLM),
    and in Qwen-MoE's mlp_only_layers / decoder_sparse_step > 1."""
    if not cfg.is_moe:
        return cfg.intermediate_size
    if (
        cfg.first_k_dense_replace
        or cfg.raw.get("mlp_only_layers")
        or int(cfg.raw.get("decoder_sparse_step") or 1) > 1
    ):
        return cfg.intermediate_size
    return 0


def shared_intermediate(cfg: ModelConfig) -> int:
    """Width of the shared-expert MLP that runs beside the routed experts (0 if none)."""
    if cfg.shared_expert_intermediate_size:
        return cfg.shared_expert_intermediate_size
    return cfg.num_shared_experts * cfg.moe_intermediate_size


def forward_bytes_per_token(
    cfg: ModelConfig,
    layout: Layout,
    dtype_bytes: int,
    *,
    moe_workspace: str = "transient",
    compiled: bool = False,
) -> int:
    """Transient activations per token at the widest point of a decoder layer.

    A gated MLP holds its input, the residual and the layer's input (3 x hidden) while the
    gate_up output [2I], the activation output [I] and the down output are alive: 3 x hidden +
    3 x intermediate per rank (memory.toml forward_*_copies; the GPU-truth Llama-3.1-8B records
    match it to 0.02 MiB once the cuBLAS workspace is added).
    """
    act = table()["activation"]
    tp = layout.tp
    copies = act[
        "forward_intermediate_copies_compiled" if compiled else "forward_intermediate_copies"
    ]
    widths = []
    dense = dense_intermediate(cfg)
    if dense:
        widths.append(copies * dense / tp)
    shared = shared_intermediate(cfg)
    if shared:
        widths.append(copies * shared / tp)
    if cfg.is_moe and moe_workspace == "transient":
        # fused_moe intermediate caches allocated per call: [tokens, top_k, 2I/tp],
        # [tokens*top_k, I/tp], [tokens, top_k, hidden] (vLLM 0.11 fused_moe/fused_moe.py
        # fused_experts_impl)
        i_rank = expert_intermediate(cfg) / (1 if layout.ep else tp)
        widths.append(cfg.num_experts_per_tok * (3 * i_rank + cfg.hidden_size))
    widest = max(widths, default=0.0)
    return int((act["forward_hidden_copies"] * cfg.hidden_size + widest) * dtype_bytes)


def moe_workspace_kind(experts: str | None) -> str:
    """'standard', 'output_only' or 'none' (monolithic kernels) for an experts class
    (memory.toml [moe_workspace]); an unknown class is taken as standard."""
    ws = table()["moe_workspace"]
    for kind in ("none", "output_only"):
        if experts in ws[kind]:
            return kind
    return "standard"


def moe_workspace_bytes(
    cfg: ModelConfig, layout: Layout, tokens: int, dtype_bytes: int, experts: str | None
) -> int:
    """vLLM 0.24 fused_moe/modular_kernel.py _allocate_buffers: workspace13 (also the output)
    and workspace2 from the WorkspaceManager, sized for max_num_batched_tokens and kept.

    TritonExperts (experts/triton_moe.py:181-196): [M, k, max(N/2, K)] + [M, k, max(N, K)];
    CutlassExpertsFp8 (cutlass_moe.py:429-444) and MarlinExperts (marlin_moe.py:711-741) swap
    the two; DeepGEMM (deep_gemm_moe.py:199-223) pads M*k to its alignment. N = 2 x the
    expert intermediate per rank, K = hidden, in the activation dtype."""
    kind = moe_workspace_kind(experts)
    if not cfg.is_moe or kind == "none":
        return 0
    if kind == "output_only":
        # experts/flashinfer_cutlass_moe.py:211-247: workspace13 [M, K], workspace2 empty
        return tokens * cfg.hidden_size * dtype_bytes
    i_rank = expert_intermediate(cfg) // (1 if layout.ep else layout.tp)
    k, hidden = cfg.num_experts_per_tok, cfg.hidden_size
    return tokens * k * (max(i_rank, hidden) + max(2 * i_rank, hidden)) * dtype_bytes


def moe_permute_scratch_bytes(
    cfg: ModelConfig, tokens: int, experts: str | None, moe_layers: int, mode: str
) -> int:
    """vLLM 0.24 fused_moe/moe_permute_unpermute.py:10-78 MoEPermuteScratch: seven int32
    buffers of max_num_tokens x top_k rows plus the CUB radix-sort workspace (its alternate
    key and value buffers), created by the CUTLASS grouped-GEMM experts on first use
    (experts/cutlass_moe.py:333-342) and kept: one per MoE layer in 0.24, one shared by all
    layers in 0.33 (moe_permute_unpermute.py:120-142 get_moe_permute_scratch)."""
    if not cfg.is_moe or mode == "none" or experts not in table()["moe_workspace"]["permute"]:
        return 0
    per = table()["moe_workspace"]["permute_int32_per_row"] * tokens * cfg.num_experts_per_tok * 4
    return per * (moe_layers if mode == "per_layer" else 1)


def cublas_workspace_bytes(era: Era, capability: int | None) -> int:
    """torch's cuBLAS workspace, allocated through its caching allocator by the first GEMM of
    the process and kept (aten/src/ATen/cuda/CublasHandlePool.cpp parseChosenWorkspaceSize:
    32 MiB on sm_90, ':4096:2:16:8' = 8.125 MiB elsewhere). 0.11 and 0.24 run their first GEMM
    in the profile run; 0.33 warms cuBLAS up before the snapshot (v1/worker/gpu_worker.py
    init_device), so there the workspace is not in the measured peak."""
    if capability is None or _cublas_before_snapshot(era):
        return 0
    act = table()["activation"]
    mib = act["cublas_workspace_mib_sm90"] if capability == 90 else act["cublas_workspace_mib"]
    return int(mib * MIB)


def sampler_path(runner: str, era: Era, version: VllmVersion | None, override: str | None) -> str:
    """Which memory.toml sampler_fp32_copies_* row applies."""
    if runner == "V2" and version is not None:
        return "v2_" + str(version.feature("v2_profile_sampler"))
    return override or era.sampler


def profile_peak(
    cfg: ModelConfig,
    layout: Layout,
    era: Era,
    run: ProfileRun,
    version: VllmVersion | None = None,
) -> tuple[int, tuple[tuple[str, int], ...]]:
    """The activation peak of the profile run and its terms (name, bytes)."""
    act = table()["activation"]
    runner = model_runner(cfg, era, version)
    feature = version.feature if version is not None else (lambda name: None)
    ws_mode = feature("moe_workspace") or "transient"
    tokens, d, hidden = run.batched_tokens, run.dtype_bytes, cfg.hidden_size
    compiled = not run.enforce_eager and not era.v0
    parts: list[tuple[str, int]] = []
    kept = cublas_workspace_bytes(era, run.capability)
    parts.append(("cuBLAS workspace", kept))
    if ws_mode == "persistent":
        ws = moe_workspace_bytes(cfg, layout, tokens, d, run.moe_experts)
        layers = run.layers if run.moe_layers is None else run.moe_layers
        scratch = moe_permute_scratch_bytes(
            cfg, tokens, run.moe_experts, layers, feature("moe_permute_scratch") or "none"
        )
        parts += [("fused-MoE workspace", ws), ("MoE permute scratch", scratch)]
        kept += ws + scratch
    forward = tokens * forward_bytes_per_token(
        cfg, layout, d, moe_workspace=ws_mode, compiled=compiled
    )
    sampler = 0
    if run.last_stage:
        num_reqs = min(run.num_seqs, tokens)
        # profile_run keeps the forward's hidden states [tokens, hidden] and the rows gathered
        # for sampling [num_reqs, hidden]; V1's _dummy_sampler_run adds torch.rand_like of them
        # (0.24 v1/worker/gpu_model_runner.py:6042 _dummy_run's return, 6058-6060, 6299-6306
        # profile_run; V2: v1/worker/gpu/model_runner.py:629-661). Logits are gathered to the
        # full vocabulary on every TP rank (model_executor/layers/logits_processor.py
        # _gather_logits); compute_logits returns them in the model dtype and the sampler works
        # on fp32 copies.
        rows = act["held_rows_v2" if runner == "V2" else "held_rows_v1"]
        held = (tokens + rows * num_reqs) * hidden * d
        copies = act["sampler_fp32_copies_" + sampler_path(runner, era, version, run.sampler)]
        logits = num_reqs * cfg.vocab_size * (d + copies * 4)
        sampler = int(held + logits)
    peak = kept + max(forward, sampler)
    parts += [("forward pass", forward), ("sampler warm-up", sampler)]
    return int(peak), tuple(parts)


def _cublas_before_snapshot(era: Era) -> bool:
    cfg = table()["non_torch"]
    return Release.parse(era.start) >= Release.parse(cfg["cublas_before_snapshot_from"])


def non_torch(era: Era, layout: Layout) -> int:
    cfg = table()["non_torch"]
    if era.v0:
        return round(cfg["v0_gib"] * GIB)
    extra = cfg["v1_multi_extra_gib"] if layout.world > 1 else 0.0
    rows = sorted(cfg["v1_single"], key=lambda r: Release.parse(r["from"]))
    single = rows[0]["gib"]
    for row in rows:
        if Release.parse(row["from"]) <= Release.parse(era.start):
            single = row["gib"]
    if _cublas_before_snapshot(era):
        single = max(single - cfg["cublas_gib"], 0.0)
    return round((single + extra) * GIB)


def startup_used(layout: Layout, era: Era) -> int:
    cfg = table()["startup"]
    extra = cfg["multi_gpu_extra_gib"] if layout.world > 1 else 0.0
    cublas = table()["non_torch"]["cublas_gib"] if _cublas_before_snapshot(era) else 0.0
    return round((cfg["context_gib"] + extra + cublas) * GIB)


def cudagraph_estimate(
    cfg: ModelConfig, era: Era, *, layers: int, moe_layers: int | None, enforce_eager: bool
) -> int:
    """CUDA-graph memory of one GPU running `layers` decoder layers (memory.toml [cudagraph])."""
    if enforce_eager or layers <= 0:
        return 0
    cg = table()["cudagraph"]
    dense_mib = (
        cg["dense_layer_mib"] + cg["dense_layer_mib_per_1024_hidden"] * cfg.hidden_size / 1024
    )
    if not cfg.is_moe:
        return int(dense_mib * layers * MIB)
    moe = layers if moe_layers is None else min(moe_layers, layers)
    if Release.parse(era.start) >= Release.parse(cg["moe_workspace_from"]):
        moe_mib = cg["moe_layer_mib_workspace"]
    else:
        moe_mib = cg["moe_layer_mib"] + cg["moe_layer_mib_per_expert"] * cfg.num_experts
    return int((moe_mib * moe + dense_mib * (layers - moe)) * MIB)


def overheads(
    cfg: ModelConfig,
    layout: Layout,
    era: Era,
    run: ProfileRun,
    version: VllmVersion | None = None,
) -> Overheads:
    activation, parts = profile_peak(cfg, layout, era, run, version)
    runner = model_runner(cfg, era, version)
    graphs_counted = era.cudagraph_in_budget and not run.enforce_eager
    if runner == "V2" and version is not None and not version.feature("v2_cudagraph_estimate"):
        # vLLM 0.24 v1/worker/gpu/model_runner.py:684-686: the V2 runner reports 0
        graphs_counted = False
    return Overheads(
        activation=activation,
        non_torch=non_torch(era, layout),
        cudagraph=cudagraph_estimate(
            cfg,
            era,
            layers=run.layers,
            moe_layers=run.moe_layers,
            enforce_eager=run.enforce_eager,
        ),
        cudagraph_in_budget=graphs_counted,
        startup_used=startup_used(layout, era),
        runner=runner,
        parts=parts,
    )
