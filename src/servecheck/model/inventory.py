"""The module inventory: every module vLLM builds for a model, in vLLM's naming and structure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Module kinds, used to group the report. Stable strings: they appear in the JSON output.
EMBEDDING = "embedding"
LM_HEAD = "lm_head"
NORM = "norm"
ATTN_QKV = "attn.qkv_proj"
ATTN_O = "attn.o_proj"
ATTN_MLA_A = "attn.mla_a_proj"  # fused_qkv_a_proj / kv_a_proj_with_mqa
ATTN_MLA_Q = "attn.mla_q_proj"  # q_b_proj / q_proj (MLA)
ATTN_MLA_KV_B = "attn.mla_kv_b_proj"
ATTENTION = "attn.kv_cache"
MLP_GATE_UP = "mlp.gate_up_proj"
MLP_DOWN = "mlp.down_proj"
ROUTER = "moe.router"
EXPERTS = "moe.experts"
SHARED_GATE_UP = "moe.shared.gate_up_proj"
SHARED_DOWN = "moe.shared.down_proj"
SHARED_GATE = "moe.shared.expert_gate"
MTP_PROJ = "mtp.eh_proj"
# Mamba / gated-delta-net conv1d: vLLM builds it as a ColumnParallelLinear without quant_config
# (vLLM 0.24 layers/mamba/mamba_mixer2.py, models/qwen3_next.py), sized from its params
MIXER_CONV = "mixer.conv"
OTHER = "other"

# Linear layer classes (vLLM LinearBase subclasses, plus "Linear": torch's nn.Linear, and the
# guess for modules derived from tensor names).
LINEAR_CLASSES = frozenset(
    {
        "Linear",
        "QKVParallelLinear",
        "MergedColumnParallelLinear",
        "ColumnParallelLinear",
        "RowParallelLinear",
        "ReplicatedLinear",
        "GateLinear",
        "DeepSeekV2FusedQkvAProjLinear",
    }
)


@dataclass(frozen=True, slots=True)
class Shard:
    """One checkpoint-side linear that vLLM loads into (part of) a module."""

    ckpt_name: str  # checkpoint prefix, e.g. model.layers.0.self_attn.q_proj
    out_features: int


@dataclass(frozen=True, slots=True)
class Experts:
    """The routed experts of one MoE block (vLLM's RoutedExperts)."""

    num_experts: int
    hidden_size: int
    intermediate_size: int
    # Checkpoint names of an expert's gate, up and down projections (Mixtral: w1, w3, w2).
    gate_name: str = "gate_proj"
    up_name: str = "up_proj"
    down_name: str = "down_proj"
    # None: one tensor set per expert ("experts.{e}.gate_proj.weight"); otherwise all experts
    # of the layer fused into 3-D tensors: "gpt_oss" ("experts.gate_up_proj_blocks", ...),
    # "gate_up_3d" (Llama 4: "experts.gate_up_proj", "experts.down_proj"), "granite"
    # ("input_linear.weight", "output_linear.weight" beside the experts module).
    fused_layout: str | None = None
    # False: no gate projection (up and down only; vLLM's FusedMoE with is_act_and_mul False)
    gated: bool = True

    @property
    def matrices(self) -> int:
        """Weight matrices of hidden x intermediate per expert (3 gated, 2 without a gate)."""
        return 3 if self.gated else 2

    @property
    def weight_elements(self) -> int:
        """Weight elements of all experts together."""
        return self.num_experts * self.matrices * self.hidden_size * self.intermediate_size

    def ckpt_names(self, prefix: str, expert: int) -> tuple[str, ...]:
        """One expert's projections as the checkpoint names them (gate, up, down; up and
        down only for experts without a gate)."""
        names = (
            (self.gate_name, self.up_name, self.down_name)
            if self.gated
            else (
                self.up_name,
                self.down_name,
            )
        )
        return tuple(f"{prefix}.{expert}.{n}" for n in names)


@dataclass(frozen=True, slots=True)
class Param:
    """A plain parameter (norm weight, embedding table, correction bias) a module owns."""

    suffix: str  # e.g. "weight", "e_score_correction_bias"
    shape: tuple[int, ...]
    dtype: str | None = None  # fixed dtype vLLM allocates (e.g. "F32"), None = model dtype


@dataclass(frozen=True)
class Module:
    """One module vLLM builds. Linear modules carry shards; MoE blocks carry Experts."""

    name: str
    kind: str
    layer_class: str
    layer: int | None = None
    # Whether vLLM passes the quantization config to this module at all.
    receives_quant_config: bool = True
    in_features: int = 0
    shards: tuple[Shard, ...] = ()
    bias: bool = False
    experts: Experts | None = None
    params: tuple[Param, ...] = ()
    mtp: bool = False
    # A dtype vLLM always allocates the weight in (GLM's fp32 router), None = the model dtype.
    weight_dtype: str | None = None
    # Checkpoint prefix of the module's own params when it differs from the vLLM name
    # (gpt-oss: model.embedding <- model.embed_tokens).
    ckpt_name: str | None = None
    # How tensor parallelism splits it: column, row, replicated, vocab, experts, none.
    tp_split: str = "none"
    # The loader dequantizes an FP8 checkpoint weight (with its weight_scale_inv) into this
    # unquantized module (vLLM 0.33 deepseek_v2.py _try_load_fp8_indexer_wk).
    upcast_fp8: bool = False

    @property
    def is_linear(self) -> bool:
        return self.layer_class in LINEAR_CLASSES

    @property
    def out_features(self) -> int:
        return sum(s.out_features for s in self.shards)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def ckpt_prefix(self) -> str:
        return self.ckpt_name or self.name


@dataclass(frozen=True)
class CacheLayer:
    """One layer's cache as vLLM allocates it (its get_kv_cache_spec), before tensor
    parallelism: attention KV per token, or recurrent state per sequence.

    kind: full | sliding | chunked (attention, K and V per token), mla (one latent per token),
    indexer (a sparse-attention indexer's key cache: `fixed_bytes` per token whatever the KV
    dtype), mamba | mamba2 | gdn | linear_attention | short_conv (state per sequence).
    `state` holds the unsharded dimensions the state shapes are computed from (vLLM 0.33
    layers/mamba/mamba_utils.py MambaStateShapeCalculator).
    """

    layer: int
    kind: str
    window: int | None = None  # sliding window or chunk size, tokens
    kv_heads: int = 0
    head_size: int = 0
    head_size_v: int = 0
    state: tuple[tuple[str, int], ...] = ()
    state_dtype: str | None = None  # a fixed SSM (temporal) state dtype, None = the model's
    mtp: bool = False
    fixed_bytes: int = 0  # bytes per token of a cache whose dtype is fixed (indexer)
    sparse: bool = False  # MLA read by sparse attention (DeepSeek-V3.2's FP8 layout)

    @property
    def is_attention(self) -> bool:
        return self.kind in ("full", "sliding", "chunked", "mla", "indexer")

    def dim(self, name: str) -> int:
        return dict(self.state)[name]


@dataclass(frozen=True)
class Inventory:
    """All modules of a model plus the facts vLLM's quantization code needs about it."""

    architecture: str
    modules: tuple[Module, ...]
    # vLLM's packed_modules_mapping for this model class (fused name -> shard names).
    packed_modules_mapping: Mapping[str, tuple[str, ...]]
    # True when the architecture is not modelled and modules were derived from tensor names.
    derived_from_tensors: bool = False
    # How vLLM's loader treats checkpoint tensors it has no parameter for.
    loader: LoaderRules = field(default_factory=lambda: LoaderRules())
    notes: tuple[str, ...] = ()
    # The cache of every layer that has one (empty: derive it from the config as a plain
    # decoder; see plan/kv_cache.py).
    cache_layers: tuple[CacheLayer, ...] = ()
    # "exact" (a record), "config" (generic derivation from config.json conventions) or
    # "tensors" (from the checkpoint's tensor names).
    derivation: str = "exact"
    # vLLM's hf_to_vllm_mapper prefixes: (checkpoint prefix, vLLM prefix).
    ckpt_prefixes: tuple[tuple[str, str], ...] = ()

    def by_name(self) -> dict[str, Module]:
        return {m.name: m for m in self.modules}

    @property
    def approximate(self) -> bool:
        return self.derived_from_tensors or self.derivation != "exact"

    def vllm_name(self, ckpt_name: str) -> str:
        """A checkpoint tensor name as vLLM's weights mapper renames it."""
        for ckpt, vllm in self.ckpt_prefixes:
            if ckpt_name.startswith(ckpt):
                return vllm + ckpt_name[len(ckpt) :]
        return ckpt_name


@dataclass(frozen=True)
class LoaderRules:
    """What the model's load_weights does with tensors it cannot place (per vLLM version).

    style: "auto" = AutoWeightsLoader (raises "There is no module or parameter named ..."),
           "manual" = a hand-written loop that indexes params_dict (raises KeyError).
    ignored_suffixes: suffixes silently dropped when unexpected.
    skip_layers_from: first layer index whose tensors are skipped (MTP layers), or None.
    """

    style: str = "auto"
    ignored_suffixes: tuple[str, ...] = (".bias",)
    skip_layers_from: int | None = None


# ---------------------------------------------------------------------------------------------
# Builders shared by the architecture modules.


def norm(name: str, size: int, layer: int | None = None, mtp: bool = False) -> Module:
    return Module(
        name=name,
        kind=NORM,
        layer_class="RMSNorm",
        layer=layer,
        receives_quant_config=False,
        params=(Param("weight", (size,)),),
        mtp=mtp,
        tp_split="replicated",
    )


def linear(
    name: str,
    kind: str,
    layer_class: str,
    in_features: int,
    shards: list[tuple[str, int]],
    *,
    layer: int | None = None,
    bias: bool = False,
    receives_quant_config: bool = True,
    tp_split: str = "column",
    params: tuple[Param, ...] = (),
    mtp: bool = False,
    weight_dtype: str | None = None,
) -> Module:
    return Module(
        name=name,
        kind=kind,
        layer_class=layer_class,
        layer=layer,
        receives_quant_config=receives_quant_config,
        in_features=in_features,
        shards=tuple(Shard(ckpt, out) for ckpt, out in shards),
        bias=bias,
        params=params,
        mtp=mtp,
        weight_dtype=weight_dtype,
        tp_split=tp_split,
    )


def row_linear(
    name: str,
    kind: str,
    in_features: int,
    out_features: int,
    *,
    layer: int | None = None,
    bias: bool = False,
    mtp: bool = False,
    ckpt: str | None = None,
) -> Module:
    """A RowParallelLinear (o_proj, down_proj, out_proj): its input split across the TP ranks,
    one checkpoint tensor (`ckpt`, default the module's name) of out_features rows."""
    return linear(
        name,
        kind,
        "RowParallelLinear",
        in_features,
        [(ckpt or name, out_features)],
        layer=layer,
        bias=bias,
        tp_split="row",
        mtp=mtp,
    )


def embedding(name: str, vocab: int, hidden: int, receives_quant_config: bool) -> Module:
    return Module(
        name=name,
        kind=EMBEDDING,
        layer_class="VocabParallelEmbedding",
        receives_quant_config=receives_quant_config,
        params=(Param("weight", (vocab, hidden)),),
        tp_split="vocab",
    )


def lm_head(vocab: int, hidden: int) -> Module:
    # vLLM's ParallelLMHead is quantized only when a target names it (class name has no "Linear").
    return Module(
        name="lm_head",
        kind=LM_HEAD,
        layer_class="ParallelLMHead",
        in_features=hidden,
        shards=(Shard("lm_head", vocab),),
        tp_split="vocab",
    )


def attention(prefix: str, layer: int, mtp: bool = False) -> Module:
    """The attention layer itself: it owns the KV cache (and its quantization scheme)."""
    return Module(
        name=f"{prefix}.attn",
        kind=ATTENTION,
        layer_class="Attention",
        layer=layer,
        mtp=mtp,
        tp_split="none",
    )


def gated_mlp(
    prefix: str,
    hidden: int,
    intermediate: int,
    layer: int,
    *,
    kind_gate_up: str = MLP_GATE_UP,
    kind_down: str = MLP_DOWN,
    bias: bool = False,
    mtp: bool = False,
) -> list[Module]:
    """A SwiGLU MLP: fused gate_up_proj (MergedColumnParallelLinear) and down_proj."""
    return [
        linear(
            f"{prefix}.gate_up_proj",
            kind_gate_up,
            "MergedColumnParallelLinear",
            hidden,
            [(f"{prefix}.gate_proj", intermediate), (f"{prefix}.up_proj", intermediate)],
            layer=layer,
            bias=bias,
            mtp=mtp,
        ),
        row_linear(
            f"{prefix}.down_proj", kind_down, intermediate, hidden, layer=layer, bias=bias, mtp=mtp
        ),
    ]


def gqa_attention(
    prefix: str,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    layer: int,
    *,
    qkv_bias: bool = False,
    o_bias: bool = False,
    qk_norm: bool = False,
    mtp: bool = False,
    ckpt_prefix: str | None = None,
) -> list[Module]:
    """Standard attention: fused qkv_proj (QKVParallelLinear), o_proj, optional q/k norms.

    ckpt_prefix: where the checkpoint stores q/k/v/o when vLLM renames the module (gpt-oss).
    """
    ck = ckpt_prefix or prefix
    modules = [
        linear(
            f"{prefix}.qkv_proj",
            ATTN_QKV,
            "QKVParallelLinear",
            hidden,
            [
                (f"{ck}.q_proj", heads * head_dim),
                (f"{ck}.k_proj", kv_heads * head_dim),
                (f"{ck}.v_proj", kv_heads * head_dim),
            ],
            layer=layer,
            bias=qkv_bias,
            tp_split="qkv",
            mtp=mtp,
        ),
        row_linear(
            f"{prefix}.o_proj",
            ATTN_O,
            heads * head_dim,
            hidden,
            layer=layer,
            bias=o_bias,
            mtp=mtp,
            ckpt=f"{ck}.o_proj",
        ),
        attention(prefix, layer, mtp=mtp),
    ]
    if qk_norm:
        modules += [
            norm(f"{prefix}.q_norm", head_dim, layer, mtp),
            norm(f"{prefix}.k_norm", head_dim, layer, mtp),
        ]
    return modules


def routed_experts(prefix: str, layer: int, experts: Experts, mtp: bool = False) -> Module:
    return Module(
        name=prefix,
        kind=EXPERTS,
        layer_class="RoutedExperts",
        layer=layer,
        in_features=experts.hidden_size,
        experts=experts,
        mtp=mtp,
        tp_split="experts",
    )
