"""GGUF files, per module: the GGML type each layer is stored in and what vLLM does with it.

Mirrors vLLM 0.10-0.23 model_executor/layers/quantization/gguf.py (``GGUFConfig``: linear
layers -> GGUFLinearMethod, vocab embeddings -> GGUFEmbeddingMethod, experts -> GGUFMoEMethod;
minimum capability 60) and model_loader/gguf_loader.py (each module's weight is read from the
llama.cpp-named tensor). The type sets per release are knowledge/gguf.toml
(scripts/extract_gguf.py): a linear or embedding layer in a type outside the unquantized and
dequantize sets raises ValueError after loading; experts outside the MMQ/MMVQ sets take a slow
per-token loop.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from servecheck.findings.registry import Finding
from servecheck.findings.rules import formats as rules
from servecheck.model.inventory import EMBEDDING, EXPERTS, LM_HEAD, Inventory, Module
from servecheck.quant.resolution import Base, Resolution, unquantized
from servecheck.source.gguf import GgufHeader, GgufTensor, table
from servecheck.versions import Release, VllmVersion

MIN_CAPABILITY = 60


@cache
def release_row(release: Release) -> dict[str, Any] | None:
    """The [[release]] row of gguf.toml covering ``release`` (None: no GGUF loader)."""
    for row in table()["release"]:
        if Release.parse(row["since"]) <= release <= Release.parse(row["until"]):
            return row
    return None


def last_release_row() -> dict[str, Any]:
    """The type sets of the last release with a GGUF loader."""
    return table()["release"][-1]


def module_tensors(m: Module, header: GgufHeader) -> list[GgufTensor] | None:
    """The GGUF tensors vLLM's loader reads into ``m``; None where the name is not mapped."""
    names = table()["names"]
    if m.kind == EXPERTS:
        keys = ["experts.gate_proj", "experts.up_proj", "experts.down_proj"]
    elif m.kind in (EMBEDDING, LM_HEAD):
        keys = ["embed_tokens" if m.kind == EMBEDDING else "lm_head"]
    else:
        keys = [s.ckpt_name.rsplit(".", 1)[-1] for s in m.shards] or [m.short_name]
        if "shared_expert" in m.name:
            keys = [f"shared_expert.{k}" for k in keys]
    out = []
    for key in keys:
        pattern = names.get(key)
        if pattern is None:
            return None
        t = header.tensor(pattern.replace("{L}", str(m.layer)) + ".weight")
        if t is None:
            if m.kind == LM_HEAD:  # tied: vLLM reads token_embd.weight
                return module_tensors_for_embedding(header)
            return None
        out.append(t)
    return out


def module_tensors_for_embedding(header: GgufHeader) -> list[GgufTensor] | None:
    t = header.tensor("token_embd.weight")
    return [t] if t is not None else None


def module_bytes(inv: Inventory, header: GgufHeader) -> dict[str, int]:
    """Bytes per module from the GGUF tensor sizes (modules whose tensors are mapped)."""
    out: dict[str, int] = {}
    for m in inv.modules:
        ts = module_tensors(m, header)
        if ts and all(t.nbytes is not None for t in ts):
            out[m.name] = sum(t.nbytes or 0 for t in ts)
    return out


class GgufResolver(Base):
    """GGUFLinearMethod / GGUFEmbeddingMethod / GGUFMoEMethod per module."""

    def __init__(
        self, inventory: Inventory, header: GgufHeader, version: VllmVersion, cap: int | None
    ):
        super().__init__(inventory, version, cap)
        self.header = header
        self.row = release_row(version.release)
        if self.row is None:
            self.collector.add(rules.GgufRemoved, "gguf", file=str(header.path), ver=self.ver)

    def resolve(self, m: Module) -> Resolution:
        row = self.row
        if row is None or not m.receives_quant_config:
            return unquantized(m)
        kind_ok = m.is_linear or m.kind in (EMBEDDING, LM_HEAD, EXPERTS)
        if not kind_ok:
            return unquantized(m)
        ts = module_tensors(m, self.header)
        if ts is None:
            return Resolution(
                module=m, method="GGUF", scheme="GGUF", note="GGUF tensor name not mapped"
            )
        types = sorted({t.type_name for t in ts})
        method = (
            "GGUFMoEMethod"
            if m.kind == EXPERTS
            else "GGUFEmbeddingMethod"
            if m.kind == EMBEDDING
            else "GGUFLinearMethod"
        )
        base = dict(module=m, scheme="GGUF", kernel_scheme="GGUF", note="/".join(types))
        base["min_capability"] = MIN_CAPABILITY
        supported = set(row["unquantized_types"]) | set(row["dequant_types"])
        bad = next((t for t in ts if t.type_name not in supported), None)
        if bad is not None:
            # GGUFLinearMethod.process_weights_after_loading (ValueError after loading);
            # experts: fused_mul_mat_gguf in the slow MoE path (NotImplementedError at warm-up)
            text = (
                f"Unsupported GGUF quantization type: {bad.type_id}"
                if m.kind == EXPERTS
                else f"Unsupported GGUF quantization type WeightType.{bad.type_name} in layer "
                f"{m.layer_class}."
            )
            self.collector.add(
                rules.GgufTypeUnsupported,
                m.name,
                key=(bad.type_name, m.kind == EXPERTS),
                module=m.name,
                gtype=bad.type_name,
                tensor=bad.name,
                vllm_text=text,
                exception="NotImplementedError" if m.kind == EXPERTS else "ValueError",
                ver=self.ver,
            )
            return Resolution(method="error", error=rules.GgufTypeUnsupported.code, **base)
        if m.kind == EXPERTS:
            return self._experts(m, ts, method, base)
        return Resolution(method=method, **base)

    def _experts(self, m: Module, ts: list[GgufTensor], method: str, base: dict) -> Resolution:
        assert self.row is not None
        fast = set(self.row["mmq_quant_types"]) | set(self.row["mmvq_quant_types"])
        slow = sorted({t.type_name for t in ts if t.type_name not in fast})
        if slow:
            self.collector.add(
                rules.GgufSlowExperts, m.name, module=m.name, gtype="/".join(slow), ver=self.ver
            )
        return Resolution(method=method, moe_method=method, **base)


def gguf_findings(findings: list[Finding]) -> list[Finding]:
    """The check's findings for a GGUF file: where the release has no GGUF loader (F008), the
    'method not in this release' finding of the config's quant_method is the same fact."""
    if any(f.code == rules.GgufRemoved.code for f in findings):
        return [f for f in findings if f.code != "Q012"]
    return findings
