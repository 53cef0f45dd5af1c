"""KV cache exactly as vLLM sizes it: bytes per token per GPU, blocks, token capacity.

vLLM 0.33 v1/kv_cache_interface.py (AttentionSpec.page_size_bytes, FullAttentionSpec and
SlidingWindowSpec.max_memory_usage_bytes, MLAAttentionSpec, MambaSpec), v1/core/kv_cache_planning.py
(grouping, bytes per block, num_blocks = available // bytes_per_block, the fit checks) and
v1/core/kv_cache_utils.py (token capacity and concurrency as logged).

Layer kinds come from the model's inventory (`Inventory.cache_layers`): full attention holds
K and V for every token; sliding-window layers hold at most the window under the hybrid
allocator, chunked local attention (Llama 4) at most one chunk plus the tokens in flight,
except in the releases where chunked local attention turns the hybrid allocator off (feature
chunked_local_hybrid_kv; then those layers count as full); Mamba / gated-delta-net layers hold
one recurrent state per sequence, and on such hybrids the attention block grows until one
attention page is at least one state (platforms/interface.py _align_hybrid_block_size).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, CacheLayer, Inventory
from servecheck.plan.config import Era
from servecheck.plan.layouts import Layout, pp_partition

# vLLM 0.33 utils/torch_utils.py STR_DTYPE_TO_TORCH_DTYPE: element size of --kv-cache-dtype
KV_DTYPE_BYTES = {
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
}
# Model types whose HF config keeps `sliding_window` but disables it unless use_sliding_window
# (transformers Qwen2Config / Qwen3Config set sliding_window to None then; vLLM reads
# hf_text_config.sliding_window, config/model.py get_sliding_window).
_USE_SLIDING_WINDOW_FLAG = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")
# DeepSeek-V3.2's FP8 MLA layout: 512 FP8 latent values, 4 fp32 scales, 64 bf16 rope values
FP8_DS_MLA_BYTES = 656


@dataclass(frozen=True, order=True)
class LayerSpec:
    """One layer's cache on one GPU."""

    kind: str  # "full", "sliding", "chunked", "mla", "state" (Mamba / linear attention)
    bytes_per_token: int  # num_kv_heads_per_rank x (head_size + head_size_v) x dtype bytes
    sliding_window: int | None = None  # the window, or the attention chunk ("chunked")
    state_bytes: int = 0  # one sequence's recurrent state (kind "state"), padded to a page


@dataclass(frozen=True)
class KvSpec:
    """The KV-cache layers of each pipeline stage, for one layout and KV dtype."""

    stages: tuple[tuple[LayerSpec, ...], ...]
    block_size: int
    dtype: str
    dtype_bytes: int

    def bytes_per_token(self, stage: int) -> int:
        """KV bytes per token of context, summed over the stage's attention layers."""
        return sum(layer.bytes_per_token for layer in self.stages[stage])


def resolve_kv_dtype(requested: str, model_dtype_bytes: int, checkpoint_kv: str | None) -> str:
    """--kv-cache-dtype as vLLM resolves it ('auto' = model dtype, or the checkpoint's scheme)."""
    if requested == "auto":
        if checkpoint_kv:
            return checkpoint_kv
        return "bfloat16" if model_dtype_bytes == 2 else "float32"
    return requested


def sliding_windows(cfg: ModelConfig) -> list[int | None]:
    """Per decoder layer: the sliding window vLLM uses, or None for full attention."""
    raw = cfg.raw
    window = cfg.sliding_window
    if cfg.model_type in _USE_SLIDING_WINDOW_FLAG and not raw.get("use_sliding_window", False):
        window = None
    if cfg.architecture == "GptOssForCausalLM" and window:
        # vLLM 0.33 models/gpt_oss.py OAIAttention: sliding window on even layers
        return [window if i % 2 == 0 else None for i in range(cfg.num_layers)]
    if cfg.layer_types and window:
        # vLLM 0.33 models/llama.py LlamaAttention: layer_types picks the sliding layers
        return [
            window if t == "sliding_attention" else None for t in cfg.layer_types[: cfg.num_layers]
        ]
    # vLLM 0.33 layers/attention/attention.py: without a per-layer window every layer uses
    # cache_config.sliding_window (the config's)
    return [window] * cfg.num_layers


def kv_spec(
    cfg: ModelConfig,
    inventory: Inventory | None,
    layout: Layout,
    kv_dtype: str,
    block_size: int,
    *,
    speculative: bool = False,
    chunked_hybrid: bool = False,
) -> KvSpec:
    """`chunked_hybrid`: chunked local attention keeps the hybrid allocator on (the release's
    chunked_local_hybrid_kv feature)."""
    dtype_bytes = KV_DTYPE_BYTES.get(kv_dtype, 2)
    if inventory is not None and inventory.cache_layers:
        return _from_cache_layers(
            cfg, inventory, layout, kv_dtype, block_size, speculative, chunked_hybrid
        )
    if inventory is None:
        layers = list(range(cfg.num_layers))
    else:
        layers = sorted(
            m.layer
            for m in inventory.modules
            if m.kind == ATTENTION and m.layer is not None and (speculative or not m.mtp)
        )
    windows = sliding_windows(cfg)
    if cfg.is_mla:
        # vLLM 0.33 models/deepseek_v2.py + MLAAttentionSpec: one latent "head" of
        # kv_lora_rank + qk_rope_head_dim, no V, not split by tensor parallelism.
        per_token = ((cfg.kv_lora_rank or 0) + cfg.qk_rope_head_dim) * dtype_bytes
    else:
        kv = max(cfg.num_kv_heads, 1)
        # vLLM 0.33 linear.py QKVParallelLinear: kv // tp heads, or 1 (replicated) if tp >= kv
        per_rank = 1 if layout.tp >= kv else kv // layout.tp
        per_token = per_rank * 2 * cfg.head_dim * dtype_bytes
    stages: list[list[LayerSpec]] = [[] for _ in range(layout.pp)]
    parts = pp_partition(cfg.num_layers, layout.pp)
    for layer in layers:
        stage = layout.pp - 1
        for s, (start, end) in enumerate(parts):
            if start <= layer < end:
                stage = s
        window = windows[layer] if layer < len(windows) else None
        if cfg.is_mla:
            spec = LayerSpec("mla", per_token)
        elif window:
            spec = LayerSpec("sliding", per_token, window)
        else:
            spec = LayerSpec("full", per_token)
        stages[stage].append(spec)
    return KvSpec(tuple(tuple(s) for s in stages), block_size, kv_dtype, dtype_bytes)


# Model dtype -> element bytes of the Mamba states (vLLM 0.33 mamba_utils.py
# MambaStateDtypeCalculator: mamba_cache_dtype "auto" = the model dtype).
_MODEL_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}
_STATE_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def state_bytes(layer: CacheLayer, tp: int, model_bytes: int) -> int:
    """One sequence's recurrent state on one of `tp` ranks (vLLM 0.33 mamba_utils.py
    MambaStateShapeCalculator, conv state then temporal state)."""
    temporal_bytes = _STATE_DTYPE_BYTES.get(layer.state_dtype or "", model_bytes)
    d = layer.dim
    if layer.kind == "mamba2":
        groups = d("groups")
        if groups % tp:
            groups += tp - groups  # extra_groups_for_head_shards
        conv = (d("intermediate") + 2 * groups * d("state")) // tp * (d("conv") - 1)
        temporal = d("heads") // tp * d("head_dim") * d("state")
        return conv * model_bytes + temporal * temporal_bytes
    if layer.kind == "mamba":
        inter = d("intermediate") // tp
        return inter * (d("conv") - 1) * model_bytes + inter * d("state") * temporal_bytes
    if layer.kind == "gdn":
        conv_dim = 2 * d("k_heads") * d("k_dim") + d("v_heads") * d("v_dim")
        conv = conv_dim // tp * (d("conv") - 1)
        temporal = d("v_heads") // tp * d("v_dim") * d("k_dim")
        return conv * model_bytes + temporal * temporal_bytes
    if layer.kind == "linear_attention":
        return d("heads") // tp * d("head_dim") * d("head_dim") * model_bytes
    return 0


def _from_cache_layers(
    cfg: ModelConfig,
    inventory: Inventory,
    layout: Layout,
    kv_dtype: str,
    block_size: int,
    speculative: bool,
    chunked_hybrid: bool,
) -> KvSpec:
    dtype_bytes = KV_DTYPE_BYTES.get(kv_dtype, 2)
    model_bytes = _MODEL_DTYPE_BYTES.get(cfg.dtype or "bfloat16", 2)
    layers = [c for c in inventory.cache_layers if speculative or not c.mtp]
    # vLLM 0.24 config/vllm.py: chunked local attention turns the hybrid allocator off unless
    # VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE (default "1" from 0.14, "0" in
    # 0.10.1-0.13); kv_cache_utils.py unify_hybrid_kv_cache_specs then makes every sliding /
    # chunked layer full attention.
    hybrid_off = any(c.kind == "chunked" for c in layers) and not chunked_hybrid

    def per_token(c: CacheLayer) -> int:
        if c.kind == "indexer":
            return c.fixed_bytes
        if c.kind == "mla" and c.sparse and dtype_bytes == 1:
            # vLLM 0.24/0.33 attention/mla_attention.py _canonicalize_sparse_mla_kv_cache_dtype:
            # FLASHMLA_SPARSE stores an FP8 cache as fp8_ds_mla, 656 bytes per token
            # (v1/kv_cache_interface.py MLAAttentionSpec.real_page_size_bytes)
            return FP8_DS_MLA_BYTES
        if c.kind == "mla":
            return c.head_size * dtype_bytes
        kv = max(c.kv_heads, 1)
        # vLLM 0.33 linear.py QKVParallelLinear: kv // tp heads, or 1 (replicated) if tp >= kv
        per_rank = 1 if layout.tp >= kv else kv // layout.tp
        return per_rank * (c.head_size + c.head_size_v) * dtype_bytes

    attn = [c for c in layers if c.is_attention]
    states = [c for c in layers if not c.is_attention]
    if states and attn and per_token(attn[0]) > 0:
        # vLLM 0.24 platforms/interface.py _align_hybrid_block_size (mamba_cache_mode "none"):
        # attention block = 16-token kernel alignment x cdiv(state page, alignment x page/token)
        page_1 = per_token(attn[0])
        state_page = max(state_bytes(c, layout.tp, model_bytes) for c in states)
        align = max(16, block_size)
        aligned = align * -(-state_page // (align * page_1))
        block_size = max(block_size, aligned)
    attn_page = block_size * per_token(attn[0]) if attn else 0
    stages: list[list[LayerSpec]] = [[] for _ in range(layout.pp)]
    parts = pp_partition(cfg.num_layers, layout.pp)
    for c in layers:
        stage = layout.pp - 1
        for s, (start, end) in enumerate(parts):
            if start <= c.layer < end:
                stage = s
        if c.is_attention:
            kind = "full" if c.kind == "indexer" else c.kind
            window = c.window if kind in ("sliding", "chunked") and not hybrid_off else None
            if kind in ("chunked", "sliding") and window is None:
                kind = "full"
            spec = LayerSpec(kind, per_token(c), window)
        else:
            # the state page is padded to exactly one attention page
            padded = max(state_bytes(c, layout.tp, model_bytes), attn_page)
            spec = LayerSpec("state", 0, None, padded)
        stages[stage].append(spec)
    return KvSpec(tuple(tuple(s) for s in stages), block_size, kv_dtype, dtype_bytes)


@dataclass(frozen=True)
class Groups:
    """vLLM's KV-cache groups for one stage (0.33 _get_kv_cache_groups_uniform_page_size)."""

    group_size: int  # layers per group (padded)
    groups: tuple[LayerSpec, ...]  # one representative spec per group

    @property
    def count(self) -> int:
        return len(self.groups)


def kv_groups(layers: tuple[LayerSpec, ...], era: Era) -> Groups:
    if not layers:
        return Groups(0, ())
    buckets = Counter(layers)
    if not era.v0 and len(buckets) > 1 and all(s.kind in ("full", "mla") for s in buckets):
        # vLLM 0.11+ v1/core/kv_cache_utils.py UniformTypeKVCacheSpecs: layers needing the same
        # token slots with different page sizes (MLA beside its indexer cache) form one group
        # whose block holds every layer's page
        return Groups(1, (LayerSpec("full", sum(s.bytes_per_token for s in layers)),))
    if era.v0 or len(buckets) == 1:
        # V0 has no hybrid allocator: every layer is one pool (sliding windows as full).
        first = layers[0] if len(buckets) == 1 else LayerSpec("full", layers[0].bytes_per_token)
        return Groups(len(layers), (first,))
    counts = list(buckets.values())
    group_size = min(counts)
    if max(counts) < min(counts) * 1.5:
        group_size = max(counts)
    groups: list[LayerSpec] = []
    for spec, n in buckets.items():
        groups += [spec] * math.ceil(n / group_size)
    return Groups(group_size, tuple(groups))


def page_bytes(spec: LayerSpec, block_size: int) -> int:
    if spec.kind == "state":
        return spec.state_bytes
    return spec.bytes_per_token * block_size


def layer_blocks_for(spec: LayerSpec, length: int, block_size: int, in_flight: int) -> int:
    """Blocks one request of `length` tokens holds in one layer (max_memory_usage_bytes)."""
    if spec.kind == "state":
        # vLLM 0.33 kv_cache_interface.py MambaSpec.max_memory_usage_bytes, mamba_cache_mode
        # "none" (hybrid models run without prefix caching by default): one state
        return 1
    if spec.kind == "sliding" and spec.sliding_window:
        # vLLM 0.33 kv_cache_interface.py SlidingWindowSpec.max_admission_blocks_per_request
        tokens = min(spec.sliding_window - 1 + in_flight, length)
        return -(-tokens // block_size) + 1
    if spec.kind == "chunked" and spec.sliding_window:
        # vLLM 0.24 kv_cache_interface.py ChunkedLocalAttentionSpec.max_admission_blocks_per_request
        tokens = min(spec.sliding_window + in_flight, length)
        return -(-tokens // block_size)
    return -(-length // block_size)


def needed_bytes(
    layers: tuple[LayerSpec, ...], length: int, block_size: int, in_flight: int
) -> int:
    """KV bytes one request of `length` tokens needs on a stage (check_enough_kv_cache_memory)."""
    return sum(
        layer_blocks_for(s, length, block_size, in_flight) * page_bytes(s, block_size)
        for s in layers
    )


@dataclass(frozen=True)
class Capacity:
    num_blocks: int
    tokens: int  # as vLLM logs "GPU KV cache size: N tokens"
    concurrency: float  # "Maximum concurrency for L tokens per request"
    bytes_per_block: int


def capacity(
    layers: tuple[LayerSpec, ...],
    available: int,
    max_model_len: int,
    block_size: int,
    era: Era,
    in_flight: int,
) -> Capacity:
    """Blocks and tokens vLLM gets from `available` bytes on one stage."""
    groups = kv_groups(layers, era)
    if groups.count == 0:
        return Capacity(0, 0, 0.0, 0)
    page = page_bytes(groups.groups[0], block_size)
    bytes_per_block = page * groups.group_size
    if bytes_per_block <= 0:
        # layers without a size (a config missing its head counts; A007 says so)
        return Capacity(0, 0, 0.0, 0)
    num_blocks = max(available // bytes_per_block, 0)
    if era.v0:
        tokens = num_blocks * block_size
        return Capacity(num_blocks, tokens, tokens / max_model_len, bytes_per_block)
    per_request = sum(
        layer_blocks_for(g, max_model_len, block_size, in_flight) for g in groups.groups
    )
    concurrency = num_blocks / per_request if per_request else 0.0
    if era.kv_tokens == "groups":
        # vLLM 0.11 kv_cache_utils.py: num_blocks // len(kv_cache_groups) * block_size
        tokens = num_blocks // groups.count * block_size
    else:
        # vLLM 0.24/0.33 kv_cache_utils.py get_kv_cache_capacity
        tokens = int(concurrency * max_model_len)
    return Capacity(num_blocks, tokens, concurrency, bytes_per_block)


def longest_len(
    layers: tuple[LayerSpec, ...],
    available: int,
    block_size: int,
    era: Era,
    in_flight: int,
    upper: int,
) -> int:
    """Longest max_model_len whose one request fits (vLLM's estimate_max_model_len)."""
    if era.v0:
        groups = kv_groups(layers, era)
        if not groups.count:
            return upper
        per_block = page_bytes(groups.groups[0], block_size) * groups.group_size
        if per_block <= 0:  # layers without a cache (a zero head size): nothing limits it
            return upper
        return min(upper, max(available, 0) // per_block * block_size)
    if needed_bytes(layers, 1, block_size, in_flight) > available:
        return 0
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if needed_bytes(layers, mid, block_size, in_flight) <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo
