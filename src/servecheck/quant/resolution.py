"""Shared types of the per-module resolvers: one module's resolution, the result, the base."""

from __future__ import annotations

from dataclasses import dataclass, field

from servecheck.findings.collect import Collector
from servecheck.findings.registry import Finding
from servecheck.findings.rules import resolution as rules
from servecheck.model.inventory import EMBEDDING, EXPERTS, LM_HEAD, MIXER_CONV, Inventory, Module
from servecheck.quant.args import QuantArgs
from servecheck.versions import VllmVersion


@dataclass(frozen=True)
class Resolution:
    """How vLLM treats one module. `scheme` None = unquantized."""

    module: Module
    method: str  # vLLM quant-method class, e.g. CompressedTensorsLinearMethod
    scheme: str | None = None  # e.g. "W8A8Fp8", "Fp8", "AWQ"
    min_capability: int | None = None
    ignored: bool = False
    ignored_by: tuple[str, ...] = ()
    target: str | None = None
    match_via: str | None = None
    weights: QuantArgs | None = None
    inputs: QuantArgs | None = None
    format: str | None = None
    moe_method: str | None = None
    block_size: tuple[int, int] | None = None  # plain fp8 weight_block_size
    # The compressed-tensors-equivalent scheme the kernel selection uses when the method is not
    # compressed-tensors (GPTQ/AWQ -> "WNA16", ModelOpt FP8 -> "W8A8Fp8"); None = `scheme`.
    kernel_scheme: str | None = None
    error: str | None = None  # code of the finding vLLM would raise for this module
    note: str | None = None
    # Quantized while loading: the checkpoint stores the module unquantized and vLLM keeps
    # `weights.num_bits` per parameter after loading (--quantization fp8, bitsandbytes in flight).
    online: bool = False

    @property
    def quantized(self) -> bool:
        return self.scheme is not None


@dataclass(frozen=True)
class ResolutionResult:
    resolutions: tuple[Resolution, ...]
    findings: tuple[Finding, ...] = field(default=())

    def by_name(self) -> dict[str, Resolution]:
        """Module name -> resolution, built once (the planner asks for it per layout);
        read-only for callers."""
        cached = self.__dict__.get("_by_name")
        if cached is None:
            cached = {r.module.name: r for r in self.resolutions}
            object.__setattr__(self, "_by_name", cached)
        return cached


def unquantized(module: Module, note: str | None = None) -> Resolution:
    if module.kind == EXPERTS:
        method = "UnquantizedFusedMoEMethod"
    elif module.kind == EMBEDDING:
        method = "UnquantizedEmbeddingMethod"
    elif module.is_linear or module.kind in (LM_HEAD, MIXER_CONV):
        method = "UnquantizedLinearMethod"
    else:
        method = "none"
    return Resolution(module=module, method=method, note=note)


class Base:
    def __init__(self, inventory: Inventory, version: VllmVersion, capability: int | None):
        self.inv = inventory
        self.version = version
        self.ver = version.effective
        self.capability = capability
        self.packed = {k: tuple(v) for k, v in inventory.packed_modules_mapping.items()}
        self.collector = Collector()

    def findings(self) -> list[Finding]:
        return self.collector.findings()

    def capability_error(self, module: Module, scheme: str, need: int) -> str | None:
        """vLLM's _check_scheme_supported after a scheme is chosen."""
        if self.capability is not None and self.capability < need:
            self.collector.add(
                rules.SchemeNeedsNewerGpu,
                module.name,
                key=(scheme, need),
                scheme=scheme,
                need=need,
                have=self.capability,
                gpu="the target GPU",
                ver=self.ver,
            )
            return rules.SchemeNeedsNewerGpu.code
        return None
