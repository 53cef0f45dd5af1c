"""NVIDIA ModelOpt checkpoints (modelopt, modelopt_fp4, modelopt_mxfp8, modelopt_mixed) per module.

Mirrors vLLM 0.33 model_executor/layers/quantization/modelopt.py: ``ModelOptQuantConfigBase``
(exclusion rules, get_quant_method), ``resolve`` (each quant_algo as a weight / activation
QuantKey pair that init_fp8 / init_nvfp4 / init_mxfp8 linear kernels choose from), the FP8,
NVFP4 and MXFP8 MoE methods, and ``ModelOptMixedPrecisionConfig`` (a quant_algo per layer from
``quantized_layers``). Kernel selection then runs as for the compressed-tensors scheme with the
same keys (``kernel_scheme``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from servecheck.findings.rules import quant_config as qrules
from servecheck.model.inventory import ATTENTION, EXPERTS, LM_HEAD, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.matching import FusedShardMismatch, fp8_is_skipped
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.versions import VllmVersion

# vLLM 0.33 modelopt.py LINEAR_ALGOS + MIXED_PRECISION (QUANT_ALGOS)
LINEAR_ALGOS = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO", "NVFP4", "W4A16_NVFP4", "MXFP8")
BLOCK_ALIASES = {"FP8_BLOCK_SCALES": "FP8_PB_WO"}


def _a(**kw: Any) -> QuantArgs:
    return QuantArgs(**kw)


FP8_TENSOR = _a(num_bits=8, type="float", strategy="tensor")
FP8_CHANNEL = _a(num_bits=8, type="float", strategy="channel")
FP8_TOKEN_DYN = _a(num_bits=8, type="float", strategy="token", dynamic=True)
FP8_BLOCK = _a(num_bits=8, type="float", strategy="block", block_structure=(128, 128))
FP8_GROUP_DYN = _a(num_bits=8, type="float", strategy="group", group_size=128, dynamic=True)
NVFP4 = _a(num_bits=4, type="float", strategy="tensor_group", group_size=16)
NVFP4_ACT = _a(num_bits=4, type="float", strategy="tensor_group", group_size=16, dynamic="local")
MXFP8 = _a(num_bits=8, type="float", strategy="group", group_size=32, scale_dtype="torch.uint8")
MXFP8_ACT = _a(
    num_bits=8, type="float", strategy="group", group_size=32, dynamic=True, scale_dtype="uint8"
)

# quant_algo -> (kernel scheme, weights, activations): modelopt.py resolve()
ALGO_KEYS: dict[str, tuple[str, QuantArgs, QuantArgs | None]] = {
    "FP8": ("W8A8Fp8", FP8_TENSOR, FP8_TENSOR),
    "FP8_PER_CHANNEL_PER_TOKEN": ("W8A8Fp8", FP8_CHANNEL, FP8_TOKEN_DYN),
    "FP8_PB_WO": ("W8A8Fp8", FP8_BLOCK, FP8_GROUP_DYN),
    "NVFP4": ("W4A4Fp4", NVFP4, NVFP4_ACT),
    "W4A16_NVFP4": ("W4A4Fp4", NVFP4, None),
    "MXFP8": ("W8A8Mxfp8", MXFP8, MXFP8_ACT),
}
# quant_algo -> the MoE method class of the owning config
MOE_METHODS = {
    "FP8": "ModelOptFp8MoEMethod",
    "FP8_PER_CHANNEL_PER_TOKEN": "ModelOptFp8MoEMethod",
    "FP8_PB_WO": "ModelOptFp8MoEMethod",
    "NVFP4": "ModelOptNvFp4FusedMoE",
    "W4A16_NVFP4": "ModelOptNvFp4FusedMoE",
    "MXFP8": "ModelOptMxFp8FusedMoE",
}
# quant_algo -> the linear method class before vLLM 0.30, which has one ModelOptLinearMethod
# (feature modelopt_linear_method; vLLM 0.29 modelopt.py ModelOptFp8Config.get_quant_method ...)
LINEAR_METHODS = {
    "FP8": "ModelOptFp8LinearMethod",
    "FP8_PER_CHANNEL_PER_TOKEN": "ModelOptFp8PcPtLinearMethod",
    "FP8_PB_WO": "ModelOptFp8PbWoLinearMethod",
    "NVFP4": "ModelOptNvFp4LinearMethod",
    "W4A16_NVFP4": "ModelOptNvFp4W4A16LinearMethod",
    "MXFP8": "ModelOptMxFp8LinearMethod",
}
# scheme names the audit sizes (checks/expected.py ESTIMATED_LAYOUTS)
AUDIT_SCHEME = {"W8A8Fp8": "MODELOPT", "W4A4Fp4": "MODELOPT_FP4", "W8A8Mxfp8": "MODELOPT"}


@dataclass(frozen=True)
class ModeloptConfig:
    algo: str
    kv_cache_algo: str | None
    exclude: tuple[str, ...]
    layers: dict[str, str]  # mixed precision: module prefix -> quant_algo

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ModeloptConfig:
        """vLLM 0.33 ModelOptQuantConfigBase.from_config (both config shapes)."""
        inner = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else None
        src = inner if inner is not None else raw
        algo = str(src.get("quant_algo") or "").upper()
        if inner is not None:
            kv = inner.get("kv_cache_quant_algo")
            exclude = inner.get("exclude_modules") or []
        else:
            scheme = raw.get("kv_cache_scheme")
            fp8 = isinstance(scheme, dict) and scheme.get("type") == "float"
            kv = "FP8" if fp8 and scheme.get("num_bits") == 8 else None  # type: ignore[union-attr]
            exclude = raw.get("ignore", raw.get("exclude_modules")) or []
        layers_raw = src.get("quantized_layers") or raw.get("quantized_layers") or {}
        layers = {
            str(k): str(v.get("quant_algo", "")).upper()
            for k, v in layers_raw.items()
            if isinstance(v, dict)
        }
        return cls(
            algo=BLOCK_ALIASES.get(algo, algo),
            kv_cache_algo=str(kv).upper() if kv else None,
            exclude=_expand(tuple(str(x) for x in exclude)),
            layers={k: BLOCK_ALIASES.get(v, v) for k, v in layers.items()},
        )


def _expand(exclude: tuple[str, ...]) -> tuple[str, ...]:
    """apply_vllm_mapper: 'path*' (no dot before the star) becomes 'path' and 'path.*'."""
    out: list[str] = []
    for e in exclude:
        if len(e) >= 2 and e.endswith("*") and e[-2] != ".":
            out += [e[:-1], e[:-1] + ".*"]
        else:
            out.append(e)
    return tuple(out)


class ModeloptResolver(Base):
    """ModelOpt methods per module."""

    def __init__(self, inventory: Inventory, cfg: ModeloptConfig, version: VllmVersion, cap):
        super().__init__(inventory, version, cap)
        self.cfg = cfg

    def excluded(self, name: str) -> bool:
        """vLLM 0.33 ModelOptQuantConfigBase.is_layer_excluded."""
        if not self.cfg.exclude:
            return False
        try:
            if fp8_is_skipped(name, self.cfg.exclude, self.packed):
                return True
        except FusedShardMismatch:
            return False
        for e in self.cfg.exclude:
            if e != name and (e in name or e in name.removeprefix("language_model.")):
                return True
        return any(fnmatchcase(name, p) for p in self.cfg.exclude)

    def algo_for(self, name: str) -> str | None:
        if self.cfg.algo != "MIXED_PRECISION":
            return self.cfg.algo
        # ModelOptMixedPrecisionConfig: the layer's own entry (fused: its first shard)
        short = name.rsplit(".", 1)[-1]
        for candidate in [name, *(name.replace(short, s) for s in self.packed.get(short, ()))]:
            if candidate in self.cfg.layers:
                return self.cfg.layers[candidate]
        return None

    def resolve(self, m: Module) -> Resolution:
        if m.kind == ATTENTION:
            if self.cfg.kv_cache_algo == "FP8":
                return Resolution(
                    module=m, method="ModelOptKVCacheMethod", note="FP8 KV-cache scales"
                )
            return unquantized(m)
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        if not (m.is_linear or m.kind in (LM_HEAD, EXPERTS)):
            return unquantized(m)
        if self.excluded(m.name) or any(
            v in m.name for v in ("vision_tower", "vision_model", "vit_large_projector")
        ):
            return Resolution(
                module=m,
                method=unquantized(m).method,
                ignored=True,
                ignored_by=(m.name,),
                note="excluded by the ModelOpt config",
            )
        algo = self.algo_for(m.name)
        if algo is None:
            return unquantized(m, note="not listed in quantized_layers")
        if algo not in ALGO_KEYS:
            self.collector.add(
                qrules.ModeloptAlgoUnknown, m.name, key=algo, algo=algo, ver=self.ver
            )
            return Resolution(module=m, method="error", error=qrules.ModeloptAlgoUnknown.code)
        kernel_scheme, w, i = ALGO_KEYS[algo]
        if m.kind == EXPERTS:
            method = MOE_METHODS[algo]
            return Resolution(
                module=m,
                method=method,
                moe_method=method,
                scheme=AUDIT_SCHEME[kernel_scheme],
                kernel_scheme=kernel_scheme,
                weights=w,
                inputs=i,
                note=algo,
            )
        per_algo = self.version.feature("modelopt_linear_method") == "per_algo"
        return Resolution(
            module=m,
            method=LINEAR_METHODS[algo] if per_algo else "ModelOptLinearMethod",
            scheme=AUDIT_SCHEME[kernel_scheme],
            kernel_scheme=kernel_scheme,
            weights=w,
            inputs=i,
            note=algo,
        )
