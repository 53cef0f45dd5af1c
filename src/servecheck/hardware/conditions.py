"""Evaluate the kernel rows of knowledge/kernels.toml against a device, an environment and a layer.

A row is vLLM's ``is_supported`` + ``can_implement`` (linear kernels) or
``is_supported_config`` (MoE experts) written as data; ``check_row`` answers the same question
and returns vLLM's reason when the answer is no. Field meanings are documented at the top of
kernels.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.versions import Release, feature

_ATOM = re.compile(r"^(==|>=|<=|>|<)(\d+)$")


@dataclass(frozen=True)
class Device:
    """The target: a CUDA GPU with its compute capability, or vLLM's CPU platform."""

    kind: str  # "cuda" or "cpu"
    capability: int | None = None
    name: str = ""

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def sm(self) -> str:
        return f"sm_{self.capability}" if self.capability is not None else self.kind

    @property
    def major(self) -> int | None:
        return None if self.capability is None else self.capability // 10


def cap_matches(expr: str, capability: int | None) -> bool:
    """Evaluate a capability expression ("==90 | family:100", ">=90 & <110", "none")."""
    if capability is None:
        return False
    for alternative in expr.split("|"):
        if all(_atom(term.strip(), capability) for term in alternative.split("&")):
            return True
    return False


def _atom(term: str, cap: int) -> bool:
    if term == "none":
        return False
    if term.startswith("family:"):
        # vLLM 0.33 platforms/interface.py is_device_capability_family: cap // 10 == x // 10
        return cap // 10 == int(term.split(":", 1)[1]) // 10
    match = _ATOM.match(term.replace(" ", ""))
    if not match:
        raise ValueError(f"kernels.toml: bad capability term {term!r}")
    op, value = match.group(1), int(match.group(2))
    return {
        "==": cap == value,
        ">=": cap >= value,
        "<=": cap <= value,
        ">": cap > value,
        "<": cap < value,
    }[op]


def describe_expr(expr: str) -> str:
    """Human form: '==90 | family:100' -> 'sm_90 or sm_10x'."""
    out = []
    for alternative in expr.split("|"):
        parts = []
        for term in (t.strip() for t in alternative.split("&")):
            if term.startswith("family:"):
                parts.append(f"sm_{int(term.split(':')[1]) // 10}x")
            elif term == "none":
                parts.append("no GPU")
            else:
                m = _ATOM.match(term.replace(" ", ""))
                if m and m.group(1) == "==":
                    parts.append(f"sm_{m.group(2)}")
                elif m and m.group(2) == "0" and m.group(1) == ">=":
                    parts.append("any CUDA GPU")
                elif m:
                    parts.append(f"{m.group(1)} sm_{m.group(2)}")
        out.append(" and ".join(parts))
    return " or ".join(out)


@cache
def _rows() -> dict[str, dict[str, Any]]:
    return kernel_table()["kernel"]


def row(name: str, version: Release) -> dict[str, Any]:
    """A kernel row as it stands in ``version``: its `until."X"` tables with X above the
    release applied, the largest X first (so the oldest difference wins)."""
    base = _rows().get(name)
    if base is None:
        raise KeyError(f"kernels.toml has no [kernel.{name}]")
    merged = {k: v for k, v in base.items() if k != "until"}
    overrides = sorted(
        ((Release.parse(k), v) for k, v in base.get("until", {}).items()), reverse=True
    )
    for until, override in overrides:
        if version >= until:
            break
        for key, value in override.items():
            if key == "why":
                merged["why"] = {**merged.get("why", {}), **value}
            else:
                merged[key] = value
    device = merged.get("device")
    if isinstance(device, str) and device.startswith("feature:"):
        merged["device"] = feature(version, device.split(":", 1)[1])
    return merged


def label(name: str) -> str:
    base = _rows().get(name)
    return base.get("label", name) if base else name


@dataclass(frozen=True)
class Layer:
    """What a kernel's can_implement looks at, for one layer (vLLM's *LayerConfig)."""

    weight_key: str | None = None
    act_key: str | None = None
    weight_block: tuple[int, int] | None = None  # FP8 block [n, k]
    act_group: tuple[int, int] | None = None  # activation group shape, e.g. (1, 128)
    act_static: bool = False
    out_dtype: str = "bfloat16"
    act_dtype: str = "bfloat16"
    n: int | None = None  # output features per partition
    k: int | None = None  # input features per partition
    full_k: int | None = None
    weight_type: str | None = None  # scalar type of mixed-precision weights, e.g. uint4b8
    group_size: int | None = None
    zero_points: bool = False
    has_g_idx: bool = False  # GPTQ activation ordering (desc_act / actorder group)
    model_type: str | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # vLLM's reason when not ok
    condition: str | None = None  # which condition failed: device, cuda, packages, ...


OK = Verdict(True)


def check_row(name: str, version: Release, device: Device, env: KernelEnv, layer: Layer) -> Verdict:
    """vLLM's is_supported and can_implement for the kernel ``name``."""
    r = row(name, version)
    why = r.get("why", {})

    def fail(condition: str, default: str) -> Verdict:
        return Verdict(False, f"{name} {why.get(condition, default)}", condition)

    # vLLM 0.33 kernels/linear/__init__.py is_supported_and_can_implement_kernel
    if name in env.disabled_kernels:
        return Verdict(False, f" {name} is disabled by environment variable", "env")
    if "composite" in r:
        reasons = []
        for part in r["composite"]:
            verdict = check_row(part, version, device, env, layer)
            if not verdict.ok:
                reasons.append(verdict)
        if not reasons:
            return OK
        return Verdict(False, "; ".join(v.reason or "" for v in reasons), reasons[0].condition)
    if not device.is_cuda:
        return fail("device", "requires CUDA.")
    cap = device.capability
    if "min_capability" in r and cap is not None and r["min_capability"] > cap:
        # vLLM 0.33 kernels/linear/__init__.py:921-929 choose_mp_linear_kernel
        return Verdict(
            False,
            f"{name} requires capability {r['min_capability']}, current compute  capability "
            f"is {cap}",
            "device",
        )
    if "device" in r and not cap_matches(r["device"], cap):
        return fail("device", f"requires {describe_expr(r['device'])}.")
    if "cuda" in r:
        need = next((v for expr, v in r["cuda"] if cap_matches(expr, cap)), None)
        if need is None or not env.cuda_at_least(need):
            return fail("cuda", f"needs a CUDA {need or '?'} build (this build: {env.cuda}).")
    for package in r.get("packages", ()):
        if not env.has(package):
            return fail("packages", f"requires the {package} package.")
    for var in r.get("env_true", ()):
        if not env.flag(var):
            return fail("env", f"is off because {var}=0.")
    for var in r.get("env_false", ()):
        if env.flag(var):
            return fail("env", f"is off because {var}=1.")
    verdict = _scheme(name, r, cap, layer)
    if not verdict.ok:
        return verdict
    return _shape(name, r, cap, layer)


def _scheme(name: str, r: dict[str, Any], cap: int | None, layer: Layer) -> Verdict:
    why = r.get("why", {})

    def fail(condition: str, default: str) -> Verdict:
        return Verdict(False, f"{name} {why.get(condition, default)}", condition)

    if r.get("static_act_ok") is False and layer.act_static:
        # vLLM 0.33 scaled_mm/BlockScaledMMLinearKernel.py:77-85
        return fail("scheme", "Only dynamic per token group activation quantization is supported.")
    if "act_group" in r:
        want = tuple(int(x) for x in r["act_group"].split("x"))
        if layer.act_group != want:
            return fail("scheme", f"supports only activation group shape {r['act_group']}.")
    if "weight_block" in r:
        want = tuple(int(x) for x in r["weight_block"].split("x"))
        if layer.weight_block != want:
            return fail("scheme", f"supports only {r['weight_block']} weight blocks.")
    allowed = _allowed_pairs(r, cap)
    pair = (layer.weight_key or "none", layer.act_key or "none")
    if allowed is not None and pair not in allowed:
        any_block = r.get("any_block_device")
        if not (
            any_block
            and cap_matches(any_block, cap)
            and layer.weight_block is not None
            and min(layer.weight_block) > 1
            and layer.act_key == "kFp8Dynamic128Sym"
            and (layer.weight_key or "").startswith("kFp8Static")
        ):
            return fail("scheme", f"kernel does not support quantization scheme {'x'.join(pair)}")
    if "weight_keys" in r and (layer.weight_key or "none") not in r["weight_keys"]:
        return fail("scheme", f"kernel does not support quantization scheme {layer.weight_key}")
    if "out_dtype" in r and layer.out_dtype not in r["out_dtype"]:
        return fail("dtype", f"supports only output dtype {', '.join(r['out_dtype'])}.")
    if "act_dtypes" in r and layer.act_dtype not in r["act_dtypes"]:
        return fail("dtype", f"supports only activation dtypes {', '.join(r['act_dtypes'])}.")
    if "weight_types" in r and layer.weight_type is not None:
        types = r.get("weight_types_zp", []) if layer.zero_points else r["weight_types"]
        if layer.weight_type not in types:
            return fail("scheme", f"Quant type ({layer.weight_type}) not supported.")
    if (
        "group_sizes" in r
        and layer.group_size is not None
        and layer.group_size not in r["group_sizes"]
        and not (name == "TritonW4A16LinearKernel" and layer.group_size == layer.full_k)
    ):
        return fail("group", f"Group size ({layer.group_size}) not supported.")
    act_order = r.get("act_order")
    if layer.has_g_idx and act_order == "never":
        return fail("scheme", "Act reordering not supported.")
    if (
        layer.has_g_idx
        and act_order == "unpartitioned"
        and layer.k is not None
        and layer.full_k is not None
        and layer.k != layer.full_k
    ):
        return fail(
            "scheme",
            "Act reordering currently not supported when the input features are partitioned "
            "across devices",
        )
    if r.get("group_positive") and (layer.group_size or 0) <= 0:
        return fail("group", f"Group size ({layer.group_size}) must be positive.")
    return OK


def _allowed_pairs(r: dict[str, Any], cap: int | None) -> set[tuple[str, str]] | None:
    if "pairs" not in r and "pairs_when" not in r:
        return None
    allowed = {tuple(p) for p in r.get("pairs", ())}
    for entry in r.get("pairs_when", ()):
        if cap_matches(entry["device"], cap):
            allowed |= {tuple(p) for p in entry["pairs"]}
    return allowed  # type: ignore[return-value]


def _shape(name: str, r: dict[str, Any], cap: int | None, layer: Layer) -> Verdict:
    why = r.get("why", {})

    def fail(condition: str, default: str) -> Verdict:
        return Verdict(False, f"{name} {why.get(condition, default)}", condition)

    if layer.n is not None and r.get("n_multiple") and layer.n % r["n_multiple"]:
        return fail("shape", f"needs output features divisible by {r['n_multiple']}.")
    if layer.k is not None and r.get("k_multiple") and layer.k % r["k_multiple"]:
        return fail("shape", f"needs input features divisible by {r['k_multiple']}.")
    if (
        r.get("group_divides_partition")
        and layer.group_size not in (None, -1)
        and layer.k is not None
        and layer.full_k is not None
        and layer.group_size < layer.full_k
        and layer.k % layer.group_size
    ):
        return fail(
            "shape",
            f"in_features per partition {layer.k} is not divisible by group_size = "
            f"{layer.group_size}.",
        )
    for model_type, expr in r.get("model_types_off", {}).items():
        if layer.model_type == model_type and cap_matches(expr, cap):
            text = why.get("model", "Should not use deepgemm for model {model_type}")
            return Verdict(False, f"{name} {text.format(model_type=model_type)}", "model")
    return OK
