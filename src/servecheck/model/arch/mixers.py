"""Recurrent sequence mixers: Mamba (Jamba), Mamba-2 (Nemotron-H, Granite 4.0, Falcon-H1) and
the gated delta net (Qwen3-Next), with the per-sequence state each keeps.

A record's `mixer` table names the module prefix and the config keys of the dimensions,
e.g. ``{kind = "mamba2", prefix = "mixer", heads = "mamba_num_heads", head_dim =
"mamba_head_dim", state = "ssm_state_size", groups = "n_groups", conv = "conv_kernel",
intermediate = "heads*head_dim"}``. A dimension is an integer, a config key, or a product
of keys ("expand*hidden", where `hidden` is the hidden size).
"""

from __future__ import annotations

from typing import Any

from servecheck.model.config import ModelConfig, raw_number
from servecheck.model.inventory import (
    MIXER_CONV,
    CacheLayer,
    Module,
    Param,
    linear,
    row_linear,
)
from servecheck.model.layers import LayerKind
from servecheck.model.records import Record

MIXER_IN = "mixer.in_proj"
MIXER_OUT = "mixer.out_proj"


def dim(spec: Any, cfg: ModelConfig, values: dict[str, int] | None = None) -> int:
    """Evaluate a dimension spec: an int, a config key, a name already computed, or a
    product "a*b" of those (`hidden` = the hidden size)."""
    if isinstance(spec, int):
        return spec
    if "|" in str(spec):
        # alternatives: the first that the config gives
        for alt in str(spec).split("|"):
            value = dim(alt, cfg, values)
            if value:
                return value
        return 0
    total = 1
    for part in str(spec).split("*"):
        part = part.strip()
        if part.isdigit():
            total *= int(part)
        elif part == "hidden":
            total *= cfg.hidden_size
        elif values and part in values:
            total *= values[part]
        else:
            value = cfg.raw.get(part)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return 0
            # a dimension: finite and of a real model's size, else the config is refused
            total *= raw_number(cfg.raw, part, high=2**24) or 0
    return int(total)


def _param(
    name: str, ckpt: str, i: int, params: tuple[Param, ...], kind: str = "mixer.param"
) -> Module:
    return Module(
        name=name,
        kind=kind,
        layer_class="Parameter",
        layer=i,
        receives_quant_config=False,
        params=params,
        ckpt_name=ckpt,
        tp_split="column",
    )


def _dims(mixer: dict[str, Any], cfg: ModelConfig) -> dict[str, int]:
    keys = ("heads", "head_dim", "state", "groups", "conv", "k_heads", "v_heads", "k_dim", "v_dim")
    values: dict[str, int] = {}
    for key in keys:
        if key in mixer:
            values[key] = dim(mixer[key], cfg, values)
    values["intermediate"] = dim(mixer.get("intermediate", "heads*head_dim"), cfg, values)
    return values


def mixer_modules(
    record: Record, cfg: ModelConfig, i: int, p: str, kind: LayerKind
) -> tuple[list[Module], list[CacheLayer]]:
    mixer = record.mixer
    mtype = str(mixer.get("kind") or ("mamba2" if kind.parallel_mamba else kind.mixer))
    prefix = f"{p}.{mixer.get('prefix', 'mixer')}"
    # where the checkpoint keeps the mixer when vLLM nests it deeper (Falcon-H1)
    ckpt = f"{p}.{mixer.get('ckpt_prefix', mixer.get('prefix', 'mixer'))}"
    d = _dims(mixer, cfg)
    bias = record.flag(mixer.get("bias", False), cfg.raw)
    conv_bias = record.flag(mixer.get("conv_bias", True), cfg.raw)
    dtype = mixer.get("state_dtype")
    if mtype == "mamba2":
        return _mamba2(prefix, ckpt, cfg, i, d, bias, conv_bias, dtype)
    if mtype == "mamba":
        return _mamba1(prefix, cfg, i, d, mixer, bias, conv_bias)
    if mtype == "gdn":
        return _gdn(prefix, cfg, i, d, mixer)
    return [], []


def _conv(
    prefix: str, i: int, conv_dim: int, kernel: int, bias: bool, ckpt: str | None = None
) -> Module:
    # vLLM builds conv1d as a linear of (kernel -> conv_dim) without quant_config; the
    # checkpoint keeps torch's Conv1d weight of shape (conv_dim, 1, kernel)
    params = (Param("weight", (conv_dim, 1, kernel)),)
    if bias:
        params += (Param("bias", (conv_dim,)),)
    return _param(f"{prefix}.conv1d", f"{ckpt or prefix}.conv1d", i, params, kind=MIXER_CONV)


def _mamba2(
    prefix: str,
    ckpt: str,
    cfg: ModelConfig,
    i: int,
    d: dict[str, int],
    bias: bool,
    conv_bias: bool,
    dtype: str | None,
) -> tuple[list[Module], list[CacheLayer]]:
    # vLLM 0.33 layers/mamba/mamba_mixer2.py MambaMixer2
    inter, groups, state, heads = d["intermediate"], d["groups"], d["state"], d["heads"]
    conv_dim = inter + 2 * groups * state
    hidden = cfg.hidden_size
    modules = [
        linear(
            f"{prefix}.in_proj",
            MIXER_IN,
            "MergedColumnParallelLinear",
            hidden,
            [(f"{ckpt}.in_proj", inter + conv_dim + heads)],
            layer=i,
            bias=bias,
        ),
        _conv(prefix, i, conv_dim, d["conv"], conv_bias, ckpt),
        _param(
            f"{prefix}.ssm",
            ckpt,
            i,
            (Param("A_log", (heads,)), Param("D", (heads,)), Param("dt_bias", (heads,))),
        ),
        _param(f"{prefix}.norm", f"{ckpt}.norm", i, (Param("weight", (inter,)),)),
        row_linear(
            f"{prefix}.out_proj",
            MIXER_OUT,
            inter,
            hidden,
            layer=i,
            bias=bias,
            ckpt=f"{ckpt}.out_proj",
        ),
    ]
    state_dims = (
        ("intermediate", inter),
        ("groups", groups),
        ("heads", heads),
        ("head_dim", d["head_dim"]),
        ("state", state),
        ("conv", d["conv"]),
    )
    return modules, [CacheLayer(i, "mamba2", state=state_dims, state_dtype=dtype)]


def _mamba1(
    prefix: str,
    cfg: ModelConfig,
    i: int,
    d: dict[str, int],
    mixer: dict[str, Any],
    bias: bool,
    conv_bias: bool,
) -> tuple[list[Module], list[CacheLayer]]:
    # vLLM 0.33 layers/mamba/mamba_mixer.py MambaMixer
    inter, state, hidden = d["intermediate"], d["state"], cfg.hidden_size
    rank = dim(mixer.get("dt_rank", "mamba_dt_rank"), cfg) or -(-hidden // 16)
    modules = [
        linear(
            f"{prefix}.in_proj",
            MIXER_IN,
            "MergedColumnParallelLinear",
            hidden,
            [(f"{prefix}.in_proj", 2 * inter)],
            layer=i,
            bias=bias,
        ),
        _conv(prefix, i, inter, d["conv"], conv_bias),
        row_linear(f"{prefix}.x_proj", "mixer.x_proj", inter, rank + 2 * state, layer=i),
        linear(
            f"{prefix}.dt_proj",
            "mixer.dt_proj",
            "ColumnParallelLinear",
            rank,
            [(f"{prefix}.dt_proj", inter)],
            layer=i,
            bias=True,
        ),
        _param(f"{prefix}.ssm", prefix, i, (Param("A_log", (inter, state)), Param("D", (inter,)))),
        row_linear(f"{prefix}.out_proj", MIXER_OUT, inter, hidden, layer=i, bias=bias),
    ]
    norms = mixer.get("inner_norms", ())
    for n in norms:
        size = rank if n == "dt_layernorm" else state
        modules.append(_param(f"{prefix}.{n}", f"{prefix}.{n}", i, (Param("weight", (size,)),)))
    state_dims = (("intermediate", inter), ("state", state), ("conv", d["conv"]))
    return modules, [CacheLayer(i, "mamba", state=state_dims)]


def _gdn(
    prefix: str, cfg: ModelConfig, i: int, d: dict[str, int], mixer: dict[str, Any]
) -> tuple[list[Module], list[CacheLayer]]:
    # vLLM 0.33 layers/mamba/gdn/qwen_gdn_linear_attn.py QwenGatedDeltaNetAttention
    kh, vh, kd, vd = d["k_heads"], d["v_heads"], d["k_dim"], d["v_dim"]
    key_dim, value_dim = kh * kd, vh * vd
    conv_dim = 2 * key_dim + value_dim
    hidden = cfg.hidden_size
    modules = [
        linear(
            f"{prefix}.in_proj_qkvz",
            MIXER_IN,
            "MergedColumnParallelLinear",
            hidden,
            [(f"{prefix}.in_proj_qkvz", 2 * key_dim + 2 * value_dim)],
            layer=i,
        ),
        linear(
            f"{prefix}.in_proj_ba",
            "mixer.in_proj_ba",
            "MergedColumnParallelLinear",
            hidden,
            [(f"{prefix}.in_proj_ba", 2 * vh)],
            layer=i,
        ),
        _conv(prefix, i, conv_dim, d["conv"], False),
        _param(f"{prefix}.ssm", prefix, i, (Param("A_log", (vh,)), Param("dt_bias", (vh,)))),
        _param(f"{prefix}.norm", f"{prefix}.norm", i, (Param("weight", (vd,)),)),
        row_linear(f"{prefix}.out_proj", MIXER_OUT, value_dim, hidden, layer=i),
    ]
    state_dims = (
        ("k_heads", kh),
        ("v_heads", vh),
        ("k_dim", kd),
        ("v_dim", vd),
        ("conv", d["conv"]),
    )
    return modules, [CacheLayer(i, "gdn", state=state_dims)]
