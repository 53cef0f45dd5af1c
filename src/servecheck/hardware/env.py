"""The software environment vLLM runs in: the CUDA build, optional kernel packages, env vars.

vLLM's kernel choice depends on more than the GPU: the CUDA runtime the wheel was built for
(CUTLASS FP8 needs 12.4 on sm_89, FP4 needs 12.8), which optional packages import
(``deep_gemm``, ``flashinfer``, ``b12x``, ``humming``...) and environment variables such as
``VLLM_USE_DEEP_GEMM``. servecheck predicts for the official wheel of the mirrored release
unless told otherwise; the defaults and their sources are the ``[environment]`` tables of
``knowledge/kernels.toml``.

``--kernel-env`` items (repeatable, comma-separated) change the assumption:

* ``cuda=12.8``: the CUDA runtime of the vLLM/torch build;
* ``deep_gemm=0``, ``flashinfer=1``, ``b12x=1``, ``humming=1``...: a package absent/present;
* ``VLLM_USE_DEEP_GEMM=0`` and any other ``VLLM_*`` variable: as if exported;
* ``amx=1``, ``amx_fp8=1``, ``avx512=0``, ``zen=1``: CPU features for ``--gpu cpu`` (default:
  this machine's /proc/cpuinfo).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from servecheck.errors import InputError
from servecheck.knowledge import load_toml
from servecheck.versions import Release, in_effect

# Packages a kernel row may require (the names used in kernels.toml).
KNOWN_PACKAGES = frozenset(
    {
        "deep_gemm",
        "flashinfer",
        "b12x",
        "humming",
        "triton_kernels",
        "fa2",
        "fa3",
        "fa4",
        "flashmla",
        "conch",
        "fbgemm_gpu",
        "amd_quark",
        "bitblas",
    }
)
# CPU features that gate vLLM's CPU kernels (hardware/cpu_backend.py); detected from
# /proc/cpuinfo unless overridden.
CPU_FEATURES = frozenset({"amx", "amx_fp8", "avx512", "avx512_bf16", "zen"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@cache
def kernel_table() -> dict[str, Any]:
    """knowledge/kernels.toml, parsed once."""
    return load_toml("kernels.toml")


@dataclass(frozen=True)
class KernelEnv:
    """What vLLM finds installed and set; see the module docstring."""

    cuda: str
    packages: frozenset[str]
    env: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    overrides: tuple[str, ...] = ()
    cpu_overrides: Mapping[str, bool] = field(default_factory=dict)

    def has(self, package: str) -> bool:
        return package in self.packages

    def is_set(self, name: str) -> bool:
        """vLLM envs.is_set: the variable was exported (whatever its value)."""
        return name in self.env

    def flag(self, name: str) -> bool:
        """A boolean vLLM environment variable, with vLLM's default when unset."""
        value = self.env.get(name)
        if value is None:
            value = str(kernel_table()["env_defaults"].get(name, "0"))
        return value.strip().lower() in _TRUE

    def value(self, name: str) -> str | None:
        return self.env.get(name)

    @property
    def cuda_tuple(self) -> tuple[int, int]:
        return _cuda_tuple(self.cuda)

    def cuda_at_least(self, version: str) -> bool:
        return self.cuda_tuple >= _cuda_tuple(version)

    @property
    def disabled_kernels(self) -> frozenset[str]:
        """VLLM_DISABLED_KERNELS (envs.py:1219-1223): comma-separated class names."""
        raw = self.env.get("VLLM_DISABLED_KERNELS", "")
        return frozenset(x.strip() for x in raw.split(",") if x.strip())

    def describe(self) -> str:
        pkgs = ", ".join(sorted(self.packages)) or "none"
        text = f"CUDA {self.cuda}; packages: {pkgs}"
        if self.env:
            text += "; " + ", ".join(f"{k}={v}" for k, v in sorted(self.env.items()))
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "cuda": self.cuda,
            "packages": sorted(self.packages),
            "env": dict(sorted(self.env.items())),
            "source": self.source,
            "overrides": list(self.overrides),
        }


def _cuda_tuple(text: str) -> tuple[int, int]:
    parts = text.strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except ValueError as exc:
        raise InputError(f"not a CUDA version: {text!r} (expected e.g. 12.8)") from exc
    return major, minor


def default_env(release: Release) -> KernelEnv:
    """The official wheel's environment for a release (the latest row at or below it)."""
    row = in_effect(kernel_table()["environment"]["from"], release)
    return KernelEnv(
        cuda=row["cuda"],
        packages=frozenset(row["packages"]),
        env={},
        source=row["source"],
    )


def with_overrides(base: KernelEnv, items: Iterable[str]) -> KernelEnv:
    """Apply ``--kernel-env`` items (``cuda=12.8``, ``deep_gemm=0``, ``VLLM_X=1``)."""
    packages = set(base.packages)
    env = dict(base.env)
    cpu = dict(base.cpu_overrides)
    cuda = base.cuda
    applied: list[str] = list(base.overrides)
    for raw in items:
        for item in (p.strip() for p in raw.split(",")):
            if not item:
                continue
            if "=" not in item:
                raise InputError(
                    f"--kernel-env {item!r}: expected NAME=VALUE, e.g. cuda=12.8, deep_gemm=0, "
                    "VLLM_USE_DEEP_GEMM=0"
                )
            name, value = (x.strip() for x in item.split("=", 1))
            key = name.lower().replace("-", "_")
            if key == "cuda":
                _cuda_tuple(value)
                cuda = value
            elif name.upper().startswith("VLLM_"):
                env[name.upper()] = value
            elif key in CPU_FEATURES:
                if value.lower() not in _TRUE | _FALSE:
                    raise InputError(f"--kernel-env {item!r}: use {key}=1 or {key}=0")
                cpu[key] = value.lower() in _TRUE
            elif key in KNOWN_PACKAGES:
                if value.lower() in _TRUE:
                    packages.add(key)
                elif value.lower() in _FALSE:
                    packages.discard(key)
                else:
                    raise InputError(f"--kernel-env {item!r}: use {key}=1 or {key}=0")
            else:
                raise InputError(
                    f"--kernel-env {item!r}: unknown name {name!r}; use cuda, a package "
                    f"({', '.join(sorted(KNOWN_PACKAGES))}), a CPU feature "
                    f"({', '.join(sorted(CPU_FEATURES))}) or a VLLM_* variable"
                )
            applied.append(item)
    return replace(
        base,
        cuda=cuda,
        packages=frozenset(packages),
        env=env,
        overrides=tuple(applied),
        cpu_overrides=cpu,
    )


def resolve_env(release: Release, items: Iterable[str] = ()) -> KernelEnv:
    """The default environment of ``release`` with ``--kernel-env`` items applied."""
    return with_overrides(default_env(release), items)
