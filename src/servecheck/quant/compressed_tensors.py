"""Parse a compressed-tensors quantization config the way vLLM's CompressedTensorsConfig does."""

from __future__ import annotations

from dataclasses import dataclass, field

from servecheck.findings.registry import Finding
from servecheck.findings.rules import quant_config as rules
from servecheck.quant.args import QuantArgs, QuantArgsError
from servecheck.versions import VllmVersion

# vLLM 0.33 compressed_tensors/utils.py is_activation_quantization_format
ACTIVATION_FORMATS = frozenset(
    {"naive-quantized", "int-quantized", "float-quantized", "nvfp4-pack-quantized"}
)


@dataclass(frozen=True)
class TargetScheme:
    """What one target maps to (vLLM's target_scheme_map value)."""

    group: str
    weights: QuantArgs
    input_activations: QuantArgs | None
    output_activations: QuantArgs | None
    format: str | None  # the group's own format; None = use the global one


@dataclass(frozen=True)
class CTConfig:
    """A parsed compressed-tensors config. `targets` preserves vLLM's dict order."""

    targets: dict[str, TargetScheme]
    ignore: tuple[str, ...]
    format: str | None
    kv_cache_scheme: dict | None
    sparsity_targets: tuple[str, ...]
    transform: bool
    status: str | None
    version: str | None
    problems: tuple[Finding, ...] = field(default=())

    def scheme_format(self, ts: TargetScheme) -> str | None:
        return ts.format if ts.format is not None else self.format


def parse_ct(raw: dict, version: VllmVersion) -> CTConfig:
    """Mirror CompressedTensorsConfig.from_config; vLLM's raises become `problems`."""
    ver = version.effective
    problems: list[Finding] = []
    global_format = raw.get("format")
    targets: dict[str, TargetScheme] = {}
    groups = raw.get("config_groups") or {}
    if not isinstance(groups, dict):
        groups = {}
    for gname, group in groups.items():
        if not isinstance(group, dict):
            problems.append(
                rules.InvalidQuantArgs.make(
                    where=f"config_groups.{gname}", error="group is not an object", ver=ver
                )
            )
            continue
        gtargets = group.get("targets") or []
        if isinstance(gtargets, str):
            gtargets = [gtargets]
        # vLLM 0.33 compressed_tensors.py from_config: a lone "*Attention" target is skipped
        if len(gtargets) == 1 and str(gtargets[0]).endswith("Attention"):
            problems.append(
                rules.AttentionGroupSkipped.make(group=gname, target=gtargets[0], ver=ver)
            )
            continue
        parsed = _parse_group(gname, group, global_format, version, problems)
        if parsed is None:
            continue
        for target in gtargets:
            # A later group naming the same target replaces the earlier one (dict assignment).
            targets[str(target)] = parsed
    sparsity = raw.get("sparsity_config") or {}
    sparse_targets = tuple(sparsity.get("targets") or ()) if isinstance(sparsity, dict) else ()
    if sparse_targets and version.feature("ct_sparsity") == "error":
        problems.append(rules.SparsityRemoved.make(targets=list(sparse_targets), ver=ver))
    kv = raw.get("kv_cache_scheme")
    if isinstance(kv, dict):
        problems.extend(_check_kv_scheme(kv, ver))
    ignore = raw.get("ignore") or []
    return CTConfig(
        targets=targets,
        ignore=tuple(str(i) for i in ignore) if isinstance(ignore, list) else (),
        format=global_format,
        kv_cache_scheme=kv if isinstance(kv, dict) else None,
        sparsity_targets=sparse_targets,
        transform=bool(raw.get("transform_config")),
        status=raw.get("quantization_status"),
        version=raw.get("version"),
        problems=tuple(problems),
    )


def _parse_group(
    gname: str, group: dict, global_format: str | None, version: VllmVersion, problems: list
) -> TargetScheme | None:
    ver = version.effective
    try:
        weights = QuantArgs.parse(group.get("weights"))
    except QuantArgsError as exc:
        problems.append(
            rules.InvalidQuantArgs.make(where=f"{gname}.weights", error=str(exc), ver=ver)
        )
        return None
    if weights.actorder == "group" and version.feature("ct_actorder_group") == "error":
        problems.append(rules.ActorderGroupRemoved.make(group=gname, actorder="group", ver=ver))
    fmt = group.get("format")
    act_format = (
        fmt in ACTIVATION_FORMATS if fmt is not None else global_format in ACTIVATION_FORMATS
    )
    inputs = None
    raw_inputs = group.get("input_activations")
    if act_format or raw_inputs:
        if not raw_inputs:
            # vLLM asserts the weights are float here (the W8A16-FP8 case).
            if not weights.is_float:
                problems.append(
                    rules.ActivationFormatWithoutInputs.make(
                        group=gname, format=fmt or global_format, ver=ver
                    )
                )
        else:
            try:
                inputs = QuantArgs.parse(raw_inputs)
            except QuantArgsError as exc:
                problems.append(
                    rules.InvalidQuantArgs.make(
                        where=f"{gname}.input_activations", error=str(exc), ver=ver
                    )
                )
                return None
    outputs = None
    if group.get("output_activations"):
        try:
            outputs = QuantArgs.parse(group["output_activations"])
        except QuantArgsError as exc:
            problems.append(
                rules.InvalidQuantArgs.make(
                    where=f"{gname}.output_activations", error=str(exc), ver=ver
                )
            )
            return None
    return TargetScheme(gname, weights, inputs, outputs, fmt)


def _check_kv_scheme(kv: dict, ver: str) -> list[Finding]:
    """vLLM 0.33 compressed_tensors.py CompressedTensorsKVCacheMethod.validate_kv_cache_scheme.

    It reads the raw dict, so missing keys fail too (num_bits has no default there).
    """
    qtype, bits = kv.get("type"), kv.get("num_bits")
    if qtype != "float" or bits != 8:
        text = (
            "Currently supported kv cache quantization is num_bits=8, type=float, however "
            f"received num_bits={bits}, type={qtype}"
        )
        return [
            rules.KvCacheSchemeUnsupported.make(
                problem=f"is num_bits={bits}, type={qtype}", vllm_text=text, ver=ver
            )
        ]
    strategy = kv.get("strategy")
    if strategy not in ("tensor", "attn_head"):
        text = (
            "Invalid strategy for compressed-tensors KV cache. Expected strategies: "
            f"[tensor, attn_head], found strategy: {strategy}"
        )
        return [
            rules.KvCacheSchemeUnsupported.make(
                problem=f"uses strategy {strategy}", vllm_text=text, ver=ver
            )
        ]
    if not kv.get("symmetric"):
        text = (
            "Only support symmetric scaling factor for compressed-tensors KV cache. However "
            f"found symmetric: {kv.get('symmetric')}"
        )
        return [
            rules.KvCacheSchemeUnsupported.make(problem="is not symmetric", vllm_text=text, ver=ver)
        ]
    return []
