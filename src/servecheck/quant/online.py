"""Quantization vLLM applies while an unquantized checkpoint loads, per release.

``--quantization fp8`` on a 16-bit checkpoint builds ``Fp8Config`` with
``is_checkpoint_fp8_serialized=False`` (up to vLLM 0.30) or, from 0.31, hands the checkpoint to
the ``fp8_per_tensor`` online config with a deprecation warning; the online shorthands
(``fp8_per_tensor``, ``fp8_per_block``, ``fp8_per_channel``, ``mxfp8`` ...) build
``OnlineQuantizationConfig``. Which linear and MoE method classes each release builds is data
(knowledge/online_quant.toml, written by scripts/extract_online_quant.py); this module maps
each class to the weight and activation keys its kernels are chosen with, and sizes the
weights vLLM keeps after quantizing them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from servecheck.findings.rules import formats as rules
from servecheck.knowledge import load_toml
from servecheck.model.inventory import EXPERTS, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.methods import _covering, method_row
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.versions import VllmVersion

FP8_TENSOR = QuantArgs(num_bits=8, type="float", strategy="tensor")
FP8_CHANNEL = QuantArgs(num_bits=8, type="float", strategy="channel")
FP8_BLOCK = QuantArgs(num_bits=8, type="float", strategy="block", block_structure=(128, 128))
FP8_TOKEN_DYN = QuantArgs(num_bits=8, type="float", strategy="token", dynamic=True)
FP8_TENSOR_DYN = QuantArgs(num_bits=8, type="float", strategy="tensor", dynamic=True)
MXFP8 = QuantArgs(num_bits=8, type="float", strategy="group", group_size=32, scale_dtype="uint8")
MXFP8_ACT = QuantArgs(
    num_bits=8, type="float", strategy="group", group_size=32, dynamic=True, scale_dtype="uint8"
)
MXFP4 = QuantArgs(num_bits=4, type="float", strategy="group", group_size=32, scale_dtype="uint8")
INT8_CHANNEL = QuantArgs(num_bits=8, type="int", strategy="channel")
NVFP4 = QuantArgs(num_bits=4, type="float", strategy="tensor_group", group_size=16)


@dataclass(frozen=True)
class Keys:
    """How a method class's kernels see a layer: the kernel scheme and the QuantKeys."""

    scheme: str  # the kernel-selection scheme (hardware/linear_kernels.py, moe_backends.py)
    weights: QuantArgs
    inputs: QuantArgs | None
    block: tuple[int, int] | None = None


# vLLM 0.33 quantization/online/fp8.py, mxfp8.py, mxfp4.py, int8.py, nvfp4.py (weight and
# activation keys of each class); 0.10-0.14 fp8.py Fp8LinearMethod / Fp8MoEMethod quantize
# per tensor with dynamic activations when the checkpoint is not FP8-serialized.
CLASS_KEYS: dict[str, Keys] = {
    "Fp8LinearMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8MoEMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8OnlineLinearMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8OnlineMoEMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8PerTensorOnlineLinearMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8PerTensorOnlineMoEMethod": Keys("Fp8", FP8_TENSOR, FP8_TENSOR_DYN),
    "Fp8PerBlockOnlineLinearMethod": Keys("Fp8", FP8_BLOCK, None, (128, 128)),
    "Fp8PerBlockOnlineMoEMethod": Keys("Fp8", FP8_BLOCK, None, (128, 128)),
    "Fp8PtpcOnlineLinearMethod": Keys("W8A8Fp8", FP8_CHANNEL, FP8_TOKEN_DYN),
    "Fp8PtpcOnlineMoEMethod": Keys("W8A8Fp8", FP8_CHANNEL, FP8_TOKEN_DYN),
    "Mxfp8OnlineLinearMethod": Keys("W8A8Mxfp8", MXFP8, MXFP8_ACT),
    "Mxfp8OnlineMoEMethod": Keys("W8A8Mxfp8", MXFP8, MXFP8_ACT),
    "Mxfp4OnlineLinearMethod": Keys("MXFP4_ONLINE", MXFP4, None),
    "Mxfp4OnlineMoEMethod": Keys("MXFP4_ONLINE", MXFP4, None),
    "Int8OnlineMoEMethod": Keys("INT8_ONLINE", INT8_CHANNEL, None),
    "Nvfp4OnlineMoEMethod": Keys("NVFP4_ONLINE", NVFP4, None),
}
FORMATS = {8: "FP8", 4: "4 bits"}


@functools.cache
def _table() -> dict[str, Any]:
    return load_toml("online_quant.toml")


@dataclass(frozen=True)
class OnlinePlan:
    """What ``--quantization NAME`` builds on an unquantized checkpoint in one release."""

    method: str
    linear: str  # method class for linear layers ('' = left unquantized)
    moe: str  # method class for routed experts ('' = left unquantized)
    redirect: str  # the online shorthand vLLM uses instead of `method` ('' = none)


def online_plan(method: str | None, version: VllmVersion | str) -> OnlinePlan | None:
    """The classes ``method`` quantizes an unquantized checkpoint with, or None when the
    release does not quantize online under that name."""
    if not method:
        return None
    table = _table()
    rows = table["fp8"] if method == "fp8" else table["online"].get(method, [])
    row = _covering(rows, version)
    if row is None or not (row["linear"] or row["moe"]):
        return None
    return OnlinePlan(method, row["linear"], row["moe"], row.get("redirect", ""))


def loaded_bytes(n: int, k: int, res: Resolution) -> int:
    """Bytes vLLM keeps for an (n x k) weight quantized while loading (weights and scales)."""
    w = res.weights
    bits = w.num_bits if w is not None else 16
    numel = n * k
    data = numel * bits // 8
    if res.kernel_scheme == "BNB_4BIT":
        # bitsandbytes quantize_4bit(blocksize=64, compress_statistics=True): one uint8 absmax
        # per 64 values and one float32 per 256 absmax blocks
        return data + math.ceil(numel / 64) + 4 * math.ceil(numel / (64 * 256))
    if w is None:
        return data
    if w.strategy == "block" and w.block_structure:
        bn, bk = w.block_structure
        return data + 4 * math.ceil(n / bn) * math.ceil(k / bk)
    if w.strategy == "channel":
        return data + 4 * n
    if w.strategy == "group" and w.group_size:
        return data + n * math.ceil(k / w.group_size)
    return data + 4


class OnlineResolver(Base):
    """Every module of an unquantized checkpoint under an online quantization method."""

    def __init__(
        self,
        inventory: Inventory,
        plan: OnlinePlan,
        version: VllmVersion,
        capability: int | None,
    ):
        super().__init__(inventory, version, capability)
        self.plan = plan
        row = method_row(plan.redirect or plan.method, version)
        self.need = row.min_capability if row is not None else None
        self.counts = {"linear": 0, "moe": 0}

    def resolve(self, m: Module) -> Resolution:
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        if m.kind == EXPERTS:
            cls, part = self.plan.moe, "moe"
        elif m.is_linear:
            cls, part = self.plan.linear, "linear"
        else:
            return unquantized(m)  # lm_head and embeddings are not LinearBase / RoutedExperts
        if not cls:
            return unquantized(m, note=f"{self.plan.method} leaves these layers unquantized")
        keys = CLASS_KEYS.get(cls, Keys(cls, FP8_TENSOR, None))
        self.counts[part] += 1
        return Resolution(
            module=m,
            method=cls,
            scheme=keys.scheme,
            kernel_scheme=keys.scheme,
            min_capability=self.need,
            weights=keys.weights,
            inputs=keys.inputs,
            block_size=keys.block,
            moe_method=cls if part == "moe" else None,
            online=True,
            note="quantized while loading",
        )

    def findings(self):  # type: ignore[override]
        out = self.collector.findings()
        parts = []
        if self.counts["linear"]:
            parts.append(f"{self.counts['linear']} linear layers ({self.plan.linear})")
        if self.counts["moe"]:
            parts.append(f"{self.counts['moe']} MoE layers ({self.plan.moe})")
        if parts:
            keys = CLASS_KEYS.get(self.plan.linear or self.plan.moe)
            bits = keys.weights.num_bits if keys else 8
            source = "fp8.py Fp8Config.get_quant_method"
            if self.plan.method != "fp8" or self.plan.redirect:
                source = "online/base.py OnlineQuantizationConfig.get_quant_method"
            out.append(
                rules.OnlineQuantization.make(
                    fmt=FORMATS.get(bits, f"{bits} bits")
                    if "Mx" not in (self.plan.linear + self.plan.moe)
                    else self.plan.method.upper(),
                    what=", ".join(parts),
                    bits=bits,
                    source=source,
                    ver=self.ver,
                )
            )
        if self.plan.method == "fp8" and self.plan.redirect:
            out.append(rules.Fp8OnlineDeprecated.make(ver=self.ver))
        return out
