"""bitsandbytes checkpoints (pre-quantized) and bitsandbytes in flight, per module.

Mirrors vLLM 0.27 (the last release with bitsandbytes; removed in 0.28)
model_executor/layers/quantization/bitsandbytes.py (``BitsAndBytesConfig``, the linear and MoE
methods) and model_loader/bitsandbytes_loader.py (what the loader refuses). A checkpoint with
``quant_method: bitsandbytes`` is pre-quantized; ``--quantization bitsandbytes`` on a 16-bit
checkpoint quantizes it to NF4 while loading (the config is built with its defaults:
4-bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servecheck.findings.rules import formats as rules
from servecheck.model.inventory import EXPERTS, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.versions import VllmVersion


@dataclass(frozen=True)
class BnbConfig:
    """The fields BitsAndBytesConfig.from_config reads (defaults as vLLM's)."""

    pre_quant: bool
    load_8bit: bool
    quant_type: str
    storage: str
    skip: tuple[str, ...]

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> BnbConfig:
        raw = raw or {}
        return cls(
            pre_quant=str(raw.get("quant_method", "")).lower() == "bitsandbytes",
            load_8bit=bool(raw.get("load_in_8bit") or False),
            quant_type=str(raw.get("bnb_4bit_quant_type") or "fp4"),
            storage=str(raw.get("bnb_4bit_quant_storage") or "uint8"),
            skip=tuple(str(x) for x in raw.get("llm_int8_skip_modules") or ()),
        )

    @property
    def weights(self) -> QuantArgs:
        if self.load_8bit:
            return QuantArgs(num_bits=8, type="int", strategy="channel")
        # in flight, the loader quantizes with quant_type "nf4" whatever the config's default
        float4 = self.pre_quant and self.quant_type == "fp4"
        return QuantArgs(num_bits=4, type="float" if float4 else "int", strategy="group",
                         group_size=64)  # fmt: skip


def is_layer_skipped_bnb(prefix: str, skip: tuple[str, ...]) -> bool:
    """vLLM 0.27 bitsandbytes.py is_layer_skipped_bnb: a skip entry equal to one dotted
    component of the name, or to one of its leading paths."""
    parts = prefix.split(".")
    leading = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return any(s in parts for s in skip) or bool(set(skip) & leading)


class BnbResolver(Base):
    """BitsAndBytesLinearMethod / BitsAndBytesMoEMethod per module."""

    def __init__(
        self,
        inventory: Inventory,
        cfg: BnbConfig,
        version: VllmVersion,
        capability: int | None,
        tp: int = 1,
    ):
        super().__init__(inventory, version, capability)
        self.cfg, self.tp = cfg, tp
        ver = self.ver
        if cfg.storage != "uint8":
            self.collector.add(
                rules.BnbConfigRejected,
                "quantization_config",
                vllm_text=f"Unsupported bnb_4bit_quant_storage: {cfg.storage}",
                ver=ver,
            )
        if cfg.pre_quant and tp > 1:
            self.collector.add(
                rules.BnbPrequantTensorParallel, "quantization_config", tp=tp, ver=ver
            )
        if cfg.pre_quant and cfg.load_8bit:
            self.collector.add(rules.Bnb8bitEager, "quantization_config", ver=ver)
        need = version.feature("bnb_min_version")
        self.collector.add(rules.BnbPackageNeeded, "bitsandbytes", need=need, ver=ver)
        self.quantized = 0

    def findings(self):  # type: ignore[override]
        out = self.collector.findings()
        if not self.cfg.pre_quant and self.quantized:
            out.append(
                rules.OnlineQuantization.make(
                    fmt="4-bit NF4 (bitsandbytes)",
                    what=f"{self.quantized} linear and MoE layers",
                    bits=4,
                    source="bitsandbytes.py; model_loader/bitsandbytes_loader.py "
                    "_unquantized_generator",
                    ver=self.ver,
                )
            )
        return out

    def resolve(self, m: Module) -> Resolution:
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        cfg = self.cfg
        kernel = "BNB_8BIT" if cfg.load_8bit else "BNB_4BIT"
        base = dict(
            module=m,
            scheme="BITSANDBYTES",
            kernel_scheme=kernel,
            weights=cfg.weights,
            min_capability=70,  # BitsAndBytesConfig.get_min_capability
            online=not cfg.pre_quant,
        )
        if m.kind == EXPERTS:
            self.quantized += 1
            # get_quant_method: every RoutedExperts layer (no skip list), 4-bit only
            if cfg.load_8bit:
                self.collector.add(rules.Bnb8bitExperts, m.name, module=m.name, ver=self.ver)
                return Resolution(module=m, method="error", error=rules.Bnb8bitExperts.code)
            return Resolution(method="BitsAndBytesMoEMethod", moe_method="BitsAndBytesMoEMethod",
                              **base)  # fmt: skip
        if not m.is_linear:
            return unquantized(m)  # ParallelLMHead and embeddings are not LinearBase
        if is_layer_skipped_bnb(m.name, cfg.skip):
            return Resolution(
                module=m,
                method="UnquantizedLinearMethod",
                ignored=True,
                ignored_by=(m.name,),
                note="in llm_int8_skip_modules",
            )
        self.quantized += 1
        return Resolution(method="BitsAndBytesLinearMethod", **base)
