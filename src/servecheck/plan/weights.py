"""Weight bytes per GPU as vLLM allocates them, for one parallel layout.

Quantized modules take their real stored bytes (safetensors headers, or the bytes their scheme
implies when only config.json is given); unquantized modules are sized from their shapes in the
dtype vLLM allocates (the model dtype, or a fixed one such as GLM's fp32 router), since vLLM
casts whatever the checkpoint stores into its own parameters. Each module's bytes are then split
the way its vLLM layer shards them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from servecheck.model.arch.towers import is_tower
from servecheck.model.config import ModelConfig, raw_number
from servecheck.model.inventory import (
    ATTENTION,
    EMBEDDING,
    EXPERTS,
    LM_HEAD,
    Inventory,
    Module,
)
from servecheck.plan.config import table
from servecheck.plan.layouts import Layout, pp_partition
from servecheck.quant.online import loaded_bytes
from servecheck.quant.resolve import Resolution, ResolutionResult
from servecheck.source.safetensors import DTYPE_BITS

# vLLM 0.33 model_executor/layers/vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE
VOCAB_PADDING = 64

# vLLM 0.33 config/model.py _resolve_auto_dtype: float32 checkpoints are downcast (to bfloat16
# where supported); 16-bit dtypes are kept.
_MODEL_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 2, "float": 2}


def model_dtype_bytes(cfg: ModelConfig) -> int:
    return _MODEL_DTYPE_BYTES.get(cfg.dtype or "bfloat16", 2)


def pad_vocab(vocab: int) -> int:
    # vLLM 0.33 vocab_parallel_embedding.py pad_vocab_size
    return -(-vocab // VOCAB_PADDING) * VOCAB_PADDING


@dataclass(frozen=True)
class StageWeights:
    """Bytes one GPU of a pipeline stage holds, by module kind (plus rotary buffers)."""

    stage: int
    by_kind: dict[str, int]
    buffers: int
    layers: tuple[int, int]  # [start, end) decoder layers of this stage
    offloaded: int = 0  # --cpu-offload-gb: decoder-layer bytes kept in pinned CPU memory

    @property
    def total(self) -> int:
        """Bytes on the GPU (offloaded weights are CPU memory the GPU reads over PCIe)."""
        return sum(self.by_kind.values()) + self.buffers - self.offloaded


@dataclass(frozen=True)
class WeightsPlan:
    stages: tuple[StageWeights, ...]
    inferred: bool  # config-only input: quantized bytes computed, not read
    notes: tuple[str, ...] = field(default=())

    @property
    def max_per_gpu(self) -> int:
        return max(s.total for s in self.stages)

    def stage(self, i: int) -> StageWeights:
        return self.stages[i]


def full_bytes(
    m: Module,
    res: Resolution,
    stored: int | None,
    cfg: ModelConfig,
    capability: int | None,
    moe_backend: str | None = None,
) -> int:
    """All of a module's bytes (every rank together) as vLLM allocates them."""
    dt = model_dtype_bytes(cfg)
    if res.online:
        return _online_bytes(m, res, cfg, dt)
    if res.scheme is None and m.kind != "other":
        return _unquantized_bytes(m, cfg, dt)
    total = stored or 0
    if m.kind == EXPERTS and m.experts is not None and res.scheme is not None:
        total = int(total * _expert_padding(res, m, capability, moe_backend))
    return total


def _unquantized_bytes(m: Module, cfg: ModelConfig, dt: int) -> int:
    if m.kind == EXPERTS and m.experts is not None:
        ex = m.experts
        return ex.weight_elements * dt
    if m.kind in (EMBEDDING, LM_HEAD):
        hidden = cfg.hidden_size
        return pad_vocab(cfg.vocab_size) * hidden * dt
    wdt = _dtype_bytes(m.weight_dtype, dt)
    total = m.out_features * m.in_features * wdt
    if m.bias:
        total += m.out_features * dt
    for p in m.params:
        total += math.prod(p.shape) * _dtype_bytes(p.dtype, dt)
    return total


def _online_bytes(m: Module, res: Resolution, cfg: ModelConfig, dt: int) -> int:
    """A module quantized while loading: the quantized weights vLLM keeps (biases and other
    parameters stay in the model dtype)."""
    if m.kind == EXPERTS and m.experts is not None:
        ex = m.experts
        per = loaded_bytes(2 * ex.intermediate_size, ex.hidden_size, res)
        per += loaded_bytes(ex.hidden_size, ex.intermediate_size, res)
        return ex.num_experts * per
    total = sum(loaded_bytes(s.out_features, m.in_features, res) for s in m.shards)
    if m.bias:
        total += m.out_features * dt
    for p in m.params:
        total += math.prod(p.shape) * _dtype_bytes(p.dtype, dt)
    return total


def _dtype_bytes(dtype: str | None, default: int) -> int:
    if dtype is None:
        return default
    return DTYPE_BITS.get(dtype, default * 8) // 8


def _expert_padding(
    res: Resolution, m: Module, capability: int | None, backend: str | None = None
) -> float:
    """Load-time padding of expert weights (memory.toml [[alloc_padding]])."""
    if m.experts is None or (capability is None and backend is None):
        return 1.0
    method = (res.scheme or "").lower()
    for row in table().get("alloc_padding", ()):
        if row["method"] != method:
            continue
        if backend is not None:
            if row.get("backend") != backend:
                continue
        elif not row["capability_min"] <= (capability or 0) <= row["capability_max"]:
            continue
        h, i = m.experts.hidden_size, m.experts.intermediate_size
        if "pad_reduction_to" in row:
            # gate_up [2I, H] pads H; down [H, I] pads I (each matrix's reduction dimension)
            step = row["pad_reduction_to"]
            gate_up = 2 * i * _round_up(h, step)
            down = h * _round_up(i, step)
            return (gate_up + down) / (3 * h * i)
        ph = _round_up(h, row["pad_hidden_to"])
        pi = _round_up(i, row["pad_intermediate_to"])
        return (ph * pi) / (h * i)
    return 1.0


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def rank_fraction(m: Module, cfg: ModelConfig, layout: Layout) -> float:
    """The share of a module's bytes one GPU holds (the largest share, where ranks differ)."""
    tp = layout.tp
    split = m.tp_split
    if split in ("column", "row"):
        return 1.0 / tp
    if split == "vocab":
        padded = pad_vocab(cfg.vocab_size)
        return (padded // tp) / padded if padded % tp == 0 else 1.0 / tp
    if split == "qkv":
        # vLLM 0.33 linear.py QKVParallelLinear: query heads split; KV heads split, or one KV
        # head per rank replicated tp / kv_heads times when tp > kv_heads.
        if len(m.shards) != 3 or m.out_features == 0:
            return 1.0 / tp
        q, k, v = (s.out_features for s in m.shards)
        kv_heads = max(cfg.num_kv_heads, 1)
        kv_per_rank = max(1, kv_heads // tp) if tp >= kv_heads else kv_heads / tp
        kv_share = kv_per_rank / kv_heads
        return (q / tp + (k + v) * kv_share) / (q + k + v)
    if split == "experts":
        if m.experts is None:
            return 1.0 / layout.moe_tp
        if layout.ep:
            # vLLM 0.33 fused_moe/expert_map_manager.py determine_expert_map: E // ep experts
            # per rank, the first E % ep ranks one more; the expert's full width stays whole.
            ep = layout.ep_size
            e = m.experts.num_experts
            return (e // ep + (1 if e % ep else 0)) / e
        return 1.0 / layout.moe_tp  # sharded over tp x dp GPUs (no expert parallelism)
    return 1.0  # replicated, none


def stage_of(m: Module, layout: Layout, num_layers: int, tied: bool) -> list[int]:
    """Pipeline stages that hold module m (tied embeddings: first and last)."""
    last = layout.pp - 1
    if m.layer is not None:
        if m.layer >= num_layers:  # MTP layers run beside the last stage
            return [last]
        for s, (start, end) in enumerate(pp_partition(num_layers, layout.pp)):
            if start <= m.layer < end:
                return [s]
        return [last]
    if m.kind == EMBEDDING:
        # vLLM 0.33 models/llama.py: with tie_word_embeddings the last PP rank builds its own
        # ParallelLMHead and loads the embedding into it.
        return [0, last] if (tied and layout.pp > 1) else [0]
    if m.kind == LM_HEAD or m.name.endswith(".norm") or m.name == "model.norm":
        return [last]
    return [0]


def plan_weights(
    cfg: ModelConfig,
    inventory: Inventory,
    resolution: ResolutionResult,
    module_bytes: dict[str, int],
    layout: Layout,
    *,
    capability: int | None,
    speculative: bool = False,
    inferred: bool = False,
    moe_backend: str | None = None,
    cpu_offload_bytes: int = 0,
    skip_towers: bool = False,
) -> WeightsPlan:
    """Weight bytes per GPU for every pipeline stage of `layout`. `skip_towers`: the
    multimodal towers are not built (text-only launch)."""
    by_res = resolution.by_name()
    per_stage: list[dict[str, float]] = [defaultdict(float) for _ in range(layout.pp)]
    # decoder-layer bytes per stage in vLLM's module order, for --cpu-offload-gb
    layer_bytes: list[list[float]] = [[] for _ in range(layout.pp)]
    tied = cfg.tie_word_embeddings
    for m in inventory.modules:
        if m.mtp and not speculative:
            continue  # vLLM skips MTP layers unless speculative decoding loads them
        if m.kind == ATTENTION or (skip_towers and is_tower(m)):
            continue
        res = by_res.get(m.name)
        if res is None:
            continue
        nbytes = full_bytes(m, res, module_bytes.get(m.name), cfg, capability, moe_backend)
        if nbytes == 0:
            continue
        share = nbytes * rank_fraction(m, cfg, layout)
        for s in stage_of(m, layout, cfg.num_layers, tied):
            per_stage[s][m.kind] += share
            if m.layer is not None and m.layer < cfg.num_layers:
                layer_bytes[s].append(share)
    buffers = rotary_cache_bytes(cfg)
    stages = []
    for s, (start, end) in enumerate(pp_partition(cfg.num_layers, layout.pp)):
        by_kind = {k: round(v) for k, v in per_stage[s].items()}
        offloaded = offloaded_bytes(layer_bytes[s], cpu_offload_bytes)
        stages.append(StageWeights(s, by_kind, buffers, (start, end), offloaded))
    notes = []
    if buffers:
        notes.append(
            f"includes the rotary cos/sin cache ({buffers / 2**20:.0f} MiB per GPU), which "
            "vLLM counts in 'Model loading took'"
        )
    return WeightsPlan(tuple(stages), inferred, tuple(notes))


def offloaded_bytes(module_bytes: list[float], limit: int) -> int:
    """Bytes --cpu-offload-gb moves to CPU memory on one GPU.

    vLLM 0.33 model_executor/offloader/uva.py UVAOffloader._maybe_offload_to_cpu (0.11
    models/utils.py maybe_offload_to_cpu): decoder layers in order, parameter by parameter,
    each offloaded while the running total is still below the limit, so the last one taken
    may overshoot it. servecheck takes whole modules (a module's weight and its scales).
    """
    if limit <= 0:
        return 0
    total = 0.0
    for nbytes in module_bytes:
        if total >= limit:
            break
        total += nbytes
    return round(total)


def rotary_cache_bytes(cfg: ModelConfig) -> int:
    """vLLM's rotary cos/sin cache: [max_position, rotary_dim] in the model dtype, one per GPU.

    vLLM 0.33 model_executor/layers/rotary_embedding/base.py RotaryEmbedding: the cache is
    registered as a buffer after `.to(dtype)`; get_rope caches one instance per configuration.
    """
    raw = cfg.raw
    positions = cfg.max_position_embeddings or 0
    scaling = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    if isinstance(scaling, dict):
        rope_type = scaling.get("rope_type", scaling.get("type"))
        factor = raw_number(scaling, "factor", high=2**20)
        original = raw_number(scaling, "original_max_position_embeddings")
        if rope_type in ("yarn", "deepseek_yarn") and factor and original:
            positions = int(original * factor)
        elif rope_type in ("linear", "dynamic") and factor:
            positions = int(positions * factor)
    if cfg.is_mla:
        rotary_dim = cfg.qk_rope_head_dim
    else:
        factor = raw_number(raw, "partial_rotary_factor", 1.0, high=1.0) or 1.0
        rotary_dim = int(cfg.head_dim * factor)
    return positions * rotary_dim * model_dtype_bytes(cfg)
