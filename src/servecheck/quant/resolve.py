"""Resolve every module's quantization the way vLLM does, and collect what vLLM would raise."""

from __future__ import annotations

from collections.abc import Mapping

from servecheck.findings.registry import Finding
from servecheck.findings.rules import quant_config as qc_rules
from servecheck.findings.rules import resolution as rules
from servecheck.model.inventory import (
    ATTENTION,
    EMBEDDING,
    EXPERTS,
    LM_HEAD,
    Inventory,
    Module,
)
from servecheck.quant.args import QuantArgs
from servecheck.quant.compressed_tensors import CTConfig, TargetScheme
from servecheck.quant.matching import (
    FusedShardMismatch,
    PatternSet,
    find_target,
    fp8_is_skipped,
    should_ignore,
    unused_patterns,
)
from servecheck.quant.methods import Platform, method_row
from servecheck.quant.online import OnlineResolver, online_plan
from servecheck.quant.resolution import Base, Resolution, ResolutionResult, unquantized
from servecheck.quant.schemes import (
    SchemeError,
    linear_scheme,
    moe_method,
    moe_scheme,
    wna16_marlin_moe_supported,
)
from servecheck.quant.spec import QuantSpec
from servecheck.source.gguf import GgufHeader
from servecheck.source.safetensors import TensorInfo
from servecheck.versions import VllmVersion

# vLLM 0.33 fp8.py Fp8Config.get_min_capability
FP8_METHOD_MIN_CAPABILITY = 75


__all__ = ["Resolution", "ResolutionResult", "resolve", "unquantized"]

# vLLM method names (after the override walk) resolved by the GPTQ / AWQ resolver.
WNA16_METHODS = {
    "gptq": "gptq",
    "gptq_marlin": "gptq",
    "auto_gptq": "gptq",
    "awq": "awq",
    "awq_marlin": "awq",
    "auto_awq": "awq",
    "cpu_awq": "awq",
}


MODELOPT_METHODS = frozenset({"modelopt", "modelopt_fp4", "modelopt_mxfp8", "modelopt_mixed"})
# Methods the plain resolver models itself (mxfp4: unquantized linears + MXFP4 experts).
PLAIN_MODELLED = frozenset({"mxfp4", "gpt_oss_mxfp4"})


def resolve(
    inventory: Inventory,
    quant: QuantSpec,
    version: VllmVersion,
    capability: int | None,
    *,
    method: str | None = None,
    plat: Platform | None = None,
    tp: int = 1,
    tensors: Mapping[str, TensorInfo] | None = None,
    gguf: GgufHeader | None = None,
) -> ResolutionResult:
    """Resolve all modules. capability: the target GPU's (major*10+minor) or None; ``method``:
    the method vLLM settled on (quant/preflight.py), default the checkpoint's; ``tensors``: the
    checkpoint's headers (None for a config alone)."""
    method = method or quant.method
    plat = plat or Platform("cuda" if capability is not None else "none", capability)
    row = method_row(method, version) if method else None
    if quant.ct is not None:
        resolver: Base = _CTResolver(inventory, quant.ct, version, capability)
    elif method == "quark" and row is not None and quant.raw:
        from servecheck.quant.quark import QuarkResolver

        resolver = QuarkResolver(inventory, quant.raw, version, capability)
    elif method == "gguf" and gguf is not None:
        from servecheck.quant.gguf import GgufResolver

        resolver = GgufResolver(inventory, gguf, version, capability)
    elif method in WNA16_METHODS and row is not None:
        from servecheck.quant.wna16 import Wna16Config, Wna16Resolver

        cfg = Wna16Config.parse(WNA16_METHODS[method], quant.raw).with_headers(tensors, version)
        resolver = Wna16Resolver(inventory, cfg, method, row.config_class, version, plat, tp)
    elif method == "bitsandbytes" and row is not None:
        from servecheck.quant.bnb import BnbConfig, BnbResolver

        resolver = BnbResolver(inventory, BnbConfig.parse(quant.raw), version, capability, tp)
    elif quant.method is None and (online := online_plan(method, version)) is not None:
        resolver = OnlineResolver(inventory, online, version, capability)
    elif method in MODELOPT_METHODS and row is not None:
        from servecheck.quant.modelopt import ModeloptConfig, ModeloptResolver

        resolver = ModeloptResolver(inventory, ModeloptConfig.parse(quant.raw), version, capability)
    elif quant.fp8 is not None:
        resolver = _Fp8Resolver(inventory, quant, version, capability)
    else:
        resolver = _PlainResolver(inventory, quant, version, capability)
    resolutions = tuple(resolver.resolve(m) for m in inventory.modules)
    findings = list(resolver.findings())
    if isinstance(resolver, _PlainResolver) and method and method not in PLAIN_MODELLED:
        # Never a false OK: a quantized method whose per-module rules are not modelled.
        file = row.file.rsplit("/", 1)[-1] if row is not None and row.file else f"{method}.py"
        findings.append(
            qc_rules.MethodRulesNotModelled.make(
                method=method, method_file=file, ver=version.effective
            )
        )
    return ResolutionResult(resolutions, tuple(findings))


class _PlainResolver(Base):
    """Unquantized models, and methods servecheck sizes but does not resolve per module."""

    def __init__(
        self, inventory: Inventory, quant: QuantSpec, version: VllmVersion, capability: int | None
    ):
        super().__init__(inventory, version, capability)
        self.quant = quant
        other = quant.other
        self.excluded = other.excluded if other else ()
        # Bits and group size of the method, for sizing (config-only) and the report.
        self.weights = None
        if other is not None and other.bits:
            is_float = (quant.method or "").startswith("modelopt")
            self.weights = QuantArgs(
                num_bits=other.bits,
                type="float" if is_float else "int",
                group_size=other.group_size if other.group_size and other.group_size > 0 else None,
                strategy="group" if other.group_size and other.group_size > 0 else "channel",
            )

    def _mxfp4(self, m: Module) -> Resolution:
        """vLLM 0.33 quantization/mxfp4.py Mxfp4Config.get_quant_method: linears stay
        unquantized; routed experts get the MXFP4 MoE method (GptOssMxfp4MoEMethod for gpt-oss,
        whose config the override maps to gpt_oss_mxfp4). Config min capability 80."""
        if m.kind != EXPERTS:
            return unquantized(m, note="MXFP4 linear layers fall back to unquantized")
        # vLLM 0.24+ mxfp4.py GptOssMxfp4Config: its own MoE method for gpt-oss (feature row)
        gpt_oss = self.inv.architecture == "GptOssForCausalLM" and self.version.feature(
            "gpt_oss_mxfp4_method"
        )
        return Resolution(
            module=m,
            method="GptOssMxfp4MoEMethod" if gpt_oss else "Mxfp4MoEMethod",
            scheme="Mxfp4",
            min_capability=80,
            moe_method="GptOssMxfp4MoEMethod" if gpt_oss else "Mxfp4MoEMethod",
        )

    def resolve(self, m: Module) -> Resolution:
        method = self.quant.method
        if method is None or not m.receives_quant_config or not (m.is_linear or m.kind == EXPERTS):
            return unquantized(m)
        if method in ("mxfp4", "gpt_oss_mxfp4"):
            return self._mxfp4(m)
        if any(
            m.name == e or m.name.startswith(e + ".") or _glob(m.name, e) for e in self.excluded
        ):
            return unquantized(m, note=f"excluded by {method} config")
        return Resolution(
            module=m,
            method=f"{method} (not modelled)",
            weights=self.weights,
            scheme=method.upper(),
            note="per-module rules for this method are not modelled",
        )


def _glob(name: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return "*" in pattern and fnmatchcase(name, pattern)


class _Fp8Resolver(Base):
    """vLLM 0.33 model_executor/layers/quantization/fp8.py Fp8Config.get_quant_method."""

    def __init__(
        self, inventory: Inventory, quant: QuantSpec, version: VllmVersion, capability: int | None
    ):
        super().__init__(inventory, version, capability)
        assert quant.fp8 is not None
        self.fp8 = quant.fp8

    def resolve(self, m: Module) -> Resolution:
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        if not (m.is_linear or m.kind == EXPERTS):
            # Fp8Config quantizes LinearBase and RoutedExperts only (ParallelLMHead isn't one).
            return unquantized(m)
        try:
            skipped = fp8_is_skipped(m.name, self.fp8.ignored_layers, self.packed)
        except FusedShardMismatch as exc:
            self.collector.add(
                rules.Fp8FusedShardsDiffer,
                m.name,
                key=(tuple(exc.covered),),
                covered=", ".join(exc.covered),
                uncovered=", ".join(exc.uncovered),
                module=m.name,
                shards=", ".join(self.packed[m.short_name]),
                ver=self.ver,
            )
            return Resolution(module=m, method="error", error=rules.Fp8FusedShardsDiffer.code)
        if skipped:
            return Resolution(
                module=m, method=unquantized(m).method, ignored=True, ignored_by=(m.name,)
            )
        method = "Fp8MoEMethod" if m.kind == EXPERTS else "Fp8LinearMethod"
        if m.kind == EXPERTS and self.fp8.store_dtype == "mxfp4":
            method = "Mxfp4MoEMethod"
        return Resolution(
            module=m,
            method=method,
            scheme="Fp8",
            min_capability=FP8_METHOD_MIN_CAPABILITY,
            block_size=self.fp8.weight_block_size,
            note="block-wise" if self.fp8.weight_block_size else "per-tensor",
        )


class _CTResolver(Base):
    """vLLM's CompressedTensorsConfig.get_quant_method for every module kind."""

    def __init__(
        self, inventory: Inventory, ct: CTConfig, version: VllmVersion, capability: int | None
    ):
        super().__init__(inventory, version, capability)
        self.ct = ct
        self.ignore = PatternSet(ct.ignore)
        self.targets = list(ct.targets)
        self.ignore_mode = version.feature("ct_ignore_fused")
        self.match_order = version.feature("ct_match_order")
        self.unmatched = version.feature("ct_unmatched_target")
        self.moe_lookup = version.feature("ct_moe_lookup")
        # vLLM 0.33 CompressedTensorsConfig._add_fused_moe_to_target_scheme_map
        self.moe_targets = list(self.targets)
        if "Linear" in ct.targets and "RoutedExperts" not in ct.targets:
            self.moe_targets.append("RoutedExperts")
        self.used_ignores: set[str] = set()

    # -- the scheme dict for one layer name (get_scheme_dict) --

    def scheme_dict(
        self, name: str, layer_class: str, targets: list[str]
    ) -> tuple[TargetScheme | None, bool, tuple[str, ...], str | None]:
        """(scheme, ignored, ignoring patterns, match_via). Raises FusedShardMismatch."""
        ignored, patterns = should_ignore(name, self.ignore, self.packed, self.ignore_mode)
        if ignored:
            self.used_ignores.update(patterns)
            return None, True, tuple(patterns), None
        match = find_target(name, layer_class, targets, self.packed, self.match_order)
        if match is None:
            return None, False, (), None
        ts = self.ct.targets.get(match.target)
        if ts is None:  # "RoutedExperts" alias of "Linear"
            ts = self.ct.targets["Linear"]
        return ts, False, (), f"{match.via}:{match.target}"

    def resolve(self, m: Module) -> Resolution:
        if m.kind == ATTENTION:
            if self.ct.kv_cache_scheme:
                return Resolution(
                    module=m,
                    method="CompressedTensorsKVCacheMethod",
                    note="fp8 KV-cache scales from the checkpoint",
                )
            return unquantized(m)
        if not m.receives_quant_config:
            return unquantized(m, note="built without quantization config")
        if m.kind == EXPERTS:
            return self.resolve_experts(m)
        if m.kind == EMBEDDING:
            return self.resolve_embedding(m)
        if not (m.is_linear or m.kind == LM_HEAD):
            return unquantized(m)
        try:
            ts, ignored, patterns, via = self.scheme_dict(m.name, m.layer_class, self.targets)
        except FusedShardMismatch as exc:
            self.collector.add(
                rules.FusedShardsDiffer,
                m.name,
                key=(tuple(exc.covered), m.short_name),
                covered=", ".join(exc.covered),
                uncovered=", ".join(exc.uncovered),
                module=m.name,
                shards=", ".join(self.packed.get(m.short_name, ())),
                vllm_text=exc.text,
                ver=self.ver,
            )
            return Resolution(module=m, method="error", error=rules.FusedShardsDiffer.code)
        if ignored:
            return Resolution(
                module=m, method=unquantized(m).method, ignored=True, ignored_by=patterns
            )
        if ts is None:
            if m.kind != LM_HEAD and m.is_linear:
                severity = None if self.unmatched == "unquantized" else rules.Severity.ERROR
                self.collector.add(
                    rules.UnmatchedTarget, m.name, key=severity, module=m.name, ver=self.ver
                )
                if severity is not None:
                    return Resolution(module=m, method="error", error=rules.UnmatchedTarget.code)
            return unquantized(m, note="no target matched")
        fmt = self.ct.scheme_format(ts)
        try:
            scheme = linear_scheme(
                ts.weights,
                ts.input_activations,
                ts.output_activations,
                fmt,
                self.capability,
                m.name,
            )
        except SchemeError as exc:
            # vLLM swallows ValueError for ParallelLMHead (NotImplementedError escapes).
            if m.kind == LM_HEAD and exc.kind == "nvfp4-input":
                return unquantized(m, note="scheme error swallowed for lm_head")
            return self._scheme_error(m, exc, ts)
        return Resolution(
            module=m,
            method="CompressedTensorsLinearMethod",
            scheme=scheme.name,
            min_capability=scheme.min_capability,
            target=via.split(":", 1)[1] if via else None,
            match_via=via.split(":", 1)[0] if via else None,
            weights=ts.weights,
            inputs=ts.input_activations,
            format=fmt,
            error=self.capability_error(m, scheme.name, scheme.min_capability),
        )

    def _scheme_error(self, m: Module, exc: SchemeError, ts: TargetScheme) -> Resolution:
        fmt = self.ct.scheme_format(ts)
        inputs = ts.input_activations.describe() if ts.input_activations else "none"
        if exc.kind == "nvfp4-input":
            self.collector.add(
                rules.Nvfp4InputMismatch,
                m.name,
                key=inputs,
                module=m.name,
                inputs=inputs,
                ver=self.ver,
            )
            code = rules.Nvfp4InputMismatch.code
        else:
            self.collector.add(
                rules.NoCompatibleScheme,
                m.name,
                key=(ts.group, fmt),
                module=m.name,
                weights=ts.weights.describe(),
                inputs=inputs,
                format=fmt,
                ver=self.ver,
            )
            code = rules.NoCompatibleScheme.code
        return Resolution(
            module=m,
            method="error",
            weights=ts.weights,
            inputs=ts.input_activations,
            format=fmt,
            error=code,
        )

    def resolve_embedding(self, m: Module) -> Resolution:
        ts, ignored, patterns, _ = self.scheme_dict(m.name, m.layer_class, self.targets)
        if ignored or ts is None:
            return Resolution(
                module=m, method="UnquantizedEmbeddingMethod", ignored=ignored, ignored_by=patterns
            )
        w = ts.weights
        if not (
            w.is_int
            and w.strategy in ("channel", "group")
            and ts.input_activations is None
            and not w.dynamic
        ):
            self.collector.add(
                rules.QuantizedEmbedding, m.name, module=m.name, weights=w.describe(), ver=self.ver
            )
            return Resolution(module=m, method="error", error=rules.QuantizedEmbedding.code)
        return Resolution(
            module=m,
            method="CompressedTensorsEmbeddingWNA16Int",
            scheme="WNA16",
            min_capability=None,
            weights=w,
            format=self.ct.scheme_format(ts),
        )

    def resolve_experts(self, m: Module) -> Resolution:
        assert m.experts is not None
        if self.moe_lookup == "linear_target":
            # vLLM 0.11: the "Linear" target's scheme, ignore never consulted for experts.
            ts = self.ct.targets.get("Linear")
            dicts = [ts, ts, ts]
            patterns: tuple[str, ...] = ()
        else:
            if self.moe_lookup == "expert0_ckpt":
                names = m.experts.ckpt_names(m.name, 0)
            else:
                names = (f"{m.name}.0.gate_proj", f"{m.name}.0.up_proj", f"{m.name}.0.down_proj")
            dicts, pats = [], []
            for name in names:
                ts, _, p, _ = self.scheme_dict(name, "RoutedExperts", self.moe_targets)
                dicts.append(ts)
                pats.extend(p)
            patterns = tuple(pats)
            # vLLM compares the scheme dicts by value (weights, activations, format): two
            # groups with equal arguments are one scheme, whichever group a name matched
            keys = [self._scheme_value(d) for d in dicts]
            if not all(k == keys[-1] for k in keys):
                detail = ", ".join(
                    f"{n.rsplit('.', 1)[-1]}: {d.weights.describe() if d else 'unquantized'}"
                    for n, d in zip(names, dicts, strict=True)
                )
                self.collector.add(
                    rules.MoeProjectionsDiffer,
                    m.name,
                    key=detail,
                    module=m.name,
                    detail=detail,
                    ver=self.ver,
                )
                return Resolution(module=m, method="error", error=rules.MoeProjectionsDiffer.code)
        ts = dicts[-1]
        if ts is None:
            return Resolution(
                module=m,
                method="UnquantizedFusedMoEMethod",
                ignored=bool(patterns),
                ignored_by=patterns,
            )
        fmt = self.ct.scheme_format(ts)
        w, i = ts.weights, ts.input_activations
        try:
            method = moe_method(w, i, fmt, self.capability)
        except SchemeError as exc:
            if exc.kind == "nvfp4-input":
                self.collector.add(
                    rules.Nvfp4InputMismatch,
                    m.name,
                    module=m.name,
                    inputs=i.describe() if i else "none",
                    ver=self.ver,
                )
                code = rules.Nvfp4InputMismatch.code
            else:
                self.collector.add(
                    rules.UnsupportedMoeScheme,
                    m.name,
                    exception="ValueError" if "For Fused MoE" in exc.text else "RuntimeError",
                    key=exc.text,
                    module=m.name,
                    weights=w.describe(),
                    inputs=i.describe() if i else "none",
                    vllm_text=exc.text,
                    ver=self.ver,
                )
                code = rules.UnsupportedMoeScheme.code
            return Resolution(module=m, method="error", weights=w, inputs=i, format=fmt, error=code)
        if (
            method == "CompressedTensorsWNA16MoEMethod"
            and self.version.feature("ct_wna16_moe_method") == "marlin_class"
            and m.experts is not None
            and wna16_marlin_moe_supported(m.experts.hidden_size, m.experts.intermediate_size, w)
        ):
            # vLLM 0.11/0.24 compressed_tensors_moe.py get_moe_method: Marlin MoE class when
            # check_moe_marlin_supports_layer (judged at TP 1 here).
            method = "CompressedTensorsWNA16MarlinMoEMethod"
        # Experts are named by vLLM's MoE method class whatever kernel runs them (below sm_89
        # W8A8 FP8 experts stay CompressedTensorsW8A8Fp8MoEMethod, run by Marlin).
        scheme = moe_scheme(method)
        # MoE methods have no capability check of their own (backends decide, see hardware).
        return Resolution(
            module=m,
            method=method,
            scheme=scheme,
            min_capability=None,
            target=ts.group,
            weights=w,
            inputs=i,
            format=fmt,
            moe_method=method,
        )

    def _scheme_value(self, ts: TargetScheme | None) -> tuple | None:
        """vLLM's get_scheme_dict value: what get_moe_method compares (no group name)."""
        if ts is None:
            return None
        return (ts.weights, ts.input_activations, ts.output_activations, self.ct.scheme_format(ts))

    def findings(self) -> list[Finding]:
        out = self.collector.findings()
        quantizable = [
            m.name
            for m in self.inv.modules
            if m.receives_quant_config and (m.is_linear or m.kind in (LM_HEAD, EXPERTS))
        ]
        expert_names = [
            n
            for m in self.inv.modules
            if m.kind == EXPERTS and m.experts
            for n in m.experts.ckpt_names(m.name, 0)
        ]
        shard_names = [s.ckpt_name for m in self.inv.modules for s in m.shards]
        names = quantizable + expert_names + shard_names
        candidates = [p for p in self.ct.ignore if p not in self.used_ignores]
        unused = unused_patterns(candidates, names)
        if unused:
            out.append(
                rules.IgnoreMatchesNothing.make(
                    unused, count=len(unused), n=len(unused), example=unused[0], ver=self.ver
                )
            )
        return out
