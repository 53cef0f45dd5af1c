"""Shared types every layer may use: the target and the order of module kinds.

A leaf: it imports nothing of servecheck, so every stage, the library surface and the renderers
can share these without import circles.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a check builds its ~10^5 long-lived objects
    (parsed headers, one record per tensor): the collector would otherwise walk all of them
    again at each collection it triggers, which costs 2-3x the JSON parsing on a Kimi-K2-sized
    checkpoint. Nothing built here forms cycles worth collecting before the check ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class CpuFacts:
    """A CPU as the machine reports it (host.read_cpu reads this machine's at the edge).

    vLLM's CPU platform decides its kernels from these: the instruction-set flags of
    /proc/cpuinfo (avx2, avx512f, avx512_bf16, amx_tile, ...), the vendor, and optional Python
    packages that change the platform (zentorch)."""

    arch: str  # platform.machine(): "x86_64", "aarch64", ...
    vendor: str  # /proc/cpuinfo vendor_id: "GenuineIntel", "AuthenticAMD", or "unknown"
    flags: frozenset[str] = frozenset()
    packages: frozenset[str] = frozenset()
    source: str = "this machine"  # where the facts come from, said in reports


UNKNOWN_CPU = CpuFacts(arch="unknown", vendor="unknown", source="not described")


@dataclass(frozen=True)
class Target:
    """What the model will run on. capability None = unknown (no GPU named) or vLLM's CPU;
    ``cpu`` describes the CPU of a "cpu" target (None: read from this machine by the caller)."""

    name: str
    kind: str  # "none", "gpu" or "cpu"
    capability: int | None = None
    memory_bytes: int | None = None
    count: int = 1
    cpu: CpuFacts | None = None


NO_TARGET = Target(name="unspecified", kind="none")

# The order in which reports list module kinds (a decoder layer from input to output).
KIND_ORDER = (
    "embedding",
    "attn.qkv_proj",
    "attn.mla_a_proj",
    "attn.mla_q_proj",
    "attn.mla_kv_b_proj",
    "attn.o_proj",
    "attn.kv_cache",
    "mlp.gate_up_proj",
    "mlp.down_proj",
    "moe.router",
    "moe.shared.gate_up_proj",
    "moe.shared.down_proj",
    "moe.experts",
    "mtp.eh_proj",
    "norm",
    "lm_head",
    "other",
)


def kind_rank(kind: str) -> int:
    """Position of a module kind in KIND_ORDER (unknown kinds last)."""
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
