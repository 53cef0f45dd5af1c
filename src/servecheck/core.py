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

# The most GPUs one plan spans (32 nodes of 8): planning enumerates every layout of them, so
# the work grows with this number; no single vLLM deployment servecheck models is larger.
MAX_GPUS = 256
# 16 TiB: no GPU or CPU memory a target describes comes near it.
MAX_MEMORY_BYTES = 2**44


def check_target(target: Target) -> Target:
    """`target` when its numbers are sane; InputError naming the one that is not."""
    from servecheck.errors import InputError

    if target.kind not in ("none", "gpu", "cpu"):
        raise InputError(f"target kind {target.kind!r}: expected 'gpu', 'cpu' or 'none'")
    count = target.count
    if type(count) is not int or not 1 <= count <= MAX_GPUS:
        raise InputError(f"{count!r} GPUs: servecheck plans 1 to {MAX_GPUS} GPUs")
    memory = target.memory_bytes
    if memory is not None and (type(memory) is not int or not 2**30 <= memory <= MAX_MEMORY_BYTES):
        raise InputError(f"target memory {memory!r} bytes: expected 1 GiB to 16 TiB")
    capability = target.capability
    if capability is not None and (type(capability) is not int or not 10 <= capability <= 1000):
        raise InputError(f"compute capability {capability!r}: expected e.g. 90 for 9.0")
    return target


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


def index_in_name(text: str) -> int | None:
    """A layer or expert number written in a tensor name, or None when `text` is not one: ASCII
    digits only, at most 9 of them (a name with a 5,000-digit "layer" is not a real layer)."""
    if 0 < len(text) <= 9 and text.isascii() and text.isdigit():
        return int(text)
    return None
