"""The attention backend vLLM selects, and whether an FP8 KV cache has one.

vLLM 0.33 (and 0.24) ``platforms/cuda.py`` ``get_attn_backend_cls``: a priority list per
device family (``_get_backend_priorities``, kernels.toml [attention_priority]) and each
backend's ``validate_configuration`` (compute capability, head size, KV-cache dtype, MLA,
sparse MLA). vLLM 0.11 picked with if/else rules, mirrored in ``_select_0_11``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servecheck.hardware.conditions import Device, cap_matches, feature
from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.hardware.kernels import Step
from servecheck.model.config import ModelConfig
from servecheck.versions import Release

NO_BACKEND = "No valid attention backend found for cuda"


@dataclass(frozen=True)
class AttentionChoice:
    """The backend for the model's attention layers, with the KV-cache dtype it was chosen for."""

    kv_cache_dtype: str  # "auto" (model dtype) or "fp8"
    backend: str | None
    label: str
    mla: bool
    sparse: bool
    head_size: int
    steps: tuple[Step, ...] = ()
    fa_version: int | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kv_cache_dtype": self.kv_cache_dtype,
            "backend": self.backend,
            "label": self.label,
            "mla": self.mla,
            "sparse": self.sparse,
            "head_size": self.head_size,
            "flash_attn_version": self.fa_version,
            "error": self.error,
            "rejected": [s.as_dict() for s in self.steps if not s.ok],
            "notes": list(self.notes),
        }


def _rows() -> dict[str, dict[str, Any]]:
    return kernel_table()["attention"]


def head_size(cfg: ModelConfig) -> int:
    """vLLM's attention head size: MLA caches kv_lora_rank + qk_rope_head_dim (576 for R1)."""
    if cfg.is_mla and cfg.kv_lora_rank:
        return cfg.kv_lora_rank + cfg.qk_rope_head_dim
    return cfg.head_dim


def uses_sparse_mla(cfg: ModelConfig) -> bool:
    """DeepSeek-V3.2-style sparse attention: an indexer (index_topk) in the config."""
    return cfg.is_mla and bool(cfg.raw.get("index_topk"))


def has_sinks(cfg: ModelConfig) -> bool:
    """Attention sinks: gpt-oss attention layers carry learned sinks (models/gpt_oss.py)."""
    return cfg.model_type == "gpt_oss" or bool(cfg.raw.get("use_attention_sinks"))


def sink_reason(name: str, device: Device, env: KernelEnv, version: Release) -> str | None:
    """vLLM 0.33 v1/attention/backend.py validate_configuration: 'attention sinks not
    supported' unless the backend's supports_sink() holds (flash_attn.py: FA3 or FA4;
    flashinfer.py: TRT-LLM attention, sm_90 / sm_10x / sm_12x in 0.33, sm_10x in 0.24;
    triton_attn.py: always)."""
    if name == "TRITON_ATTN":
        return None
    if name == "FLASH_ATTN" and flash_attn_version(device, env) in (3, 4):
        return None
    devices = feature(version, "flashinfer_sink_devices")
    if name == "FLASHINFER" and env.has("flashinfer") and cap_matches(devices, device.capability):
        return None
    return "attention sinks not supported"


def priorities(device: Device, mla: bool, sparse: bool) -> list[str]:
    """vLLM 0.33 platforms/cuda.py:83-181 _get_backend_priorities (sparse lists simplified)."""
    p = kernel_table()["attention_priority"]
    major = device.major
    if mla:
        if major == 10:
            return p["mla_sm10x"] + p["sparse_sm10x"]
        if major == 12:
            return list(p["mla_sm12x"])
        return p["mla_other"] + p["sparse_other"]
    return list(p["dense_sm10x"] if major == 10 else p["dense_other"])


def flash_attn_version(device: Device, env: KernelEnv) -> int:
    """vLLM 0.33 v1/attention/backends/fa_utils.py:98-107: FA3 on 9.x, FA4 on 10.x, else FA2."""
    if device.major == 9 and env.has("fa3"):
        return 3
    if device.major == 10 and env.has("fa4"):
        return 4
    return 2


def _check(
    name: str,
    device: Device,
    env: KernelEnv,
    cfg: ModelConfig,
    kv: str,
    mla: bool,
    sparse: bool,
    version: Release,
) -> str | None:
    """validate_configuration (v1/attention/backend.py:279-369): None or the first reason."""
    r = _rows()[name]
    hs = head_size(cfg)
    reasons = []
    if has_sinks(cfg):
        sink = sink_reason(name, device, env, version)
        if sink:
            reasons.append(sink)
    for package in r.get("packages", ()):
        if not env.has(package):
            return f"ImportError: {package} is not available"
    if name == "FLASH_ATTN":
        fa4 = "family:90 | family:100 | family:110"
        big = env.has("fa4") and cap_matches(fa4, device.capability)
        if hs % 8 or hs > (512 if big else 256):
            reasons.append("head_size not supported")
    elif ("head_sizes" in r and hs not in r["head_sizes"]) or (r.get("head") == "ge32" and hs < 32):
        reasons.append("head_size not supported")
    if kv == "fp8":
        allowed = r.get("kv_fp8_device", "none")
        if name == "FLASH_ATTN":
            # fa_utils.py:282-312: FP8 KV needs FA3 on SM90 or FA4 on SM100
            fav = flash_attn_version(device, env)
            if not ((fav == 3 and device.major == 9) or (fav == 4 and device.major == 10)):
                reasons.append(
                    "FP8 KV cache requires FA3 on SM90, FA4 with head_size=512 on SM90, or FA4 "
                    "on SM100"
                )
        elif not cap_matches(allowed, device.capability):
            reasons.append("kv_cache_dtype not supported")
    elif r.get("fp8_only"):
        reasons.append("kv_cache_dtype not supported")
    if mla != bool(r.get("mla")):
        reasons.append("MLA not supported" if mla else "non-MLA not supported")
    if sparse != bool(r.get("sparse")):
        reasons.append("sparse not supported" if sparse else "non-sparse not supported")
    if not cap_matches(r["device"], device.capability):
        reasons.append("compute capability not supported")
    if "qk_nope" in r and cfg.qk_nope_head_dim not in r["qk_nope"]:
        reasons.append(
            "FlashInfer MLA kernel requires qk_nope_head_dim in [64, 128, 192], but got "
            f"{cfg.qk_nope_head_dim}"
        )
    return ", ".join(reasons) if reasons else None


def select_attention(
    cfg: ModelConfig, device: Device, env: KernelEnv, version: Release, kv: str = "auto"
) -> AttentionChoice:
    """The attention backend for ``cfg`` on ``device`` with KV-cache dtype ``kv``."""
    mla = cfg.is_mla
    sparse = uses_sparse_mla(cfg)
    hs = head_size(cfg)
    if feature(version, "attention_selection") == "rules":
        return _select_0_11(cfg, device, env, kv, mla, sparse, hs)
    steps: list[Step] = []
    for name in priorities(device, mla, sparse):
        reason = _check(name, device, env, cfg, kv, mla, sparse, version)
        steps.append(Step(name, reason is None, reason))
        if reason is None:
            fav = flash_attn_version(device, env) if name == "FLASH_ATTN" else None
            return AttentionChoice(
                kv_cache_dtype=kv,
                backend=name,
                label=_rows()[name]["label"] + (f" {fav}" if fav else ""),
                mla=mla,
                sparse=sparse,
                head_size=hs,
                steps=tuple(steps),
                fa_version=fav,
            )
    reasons = ", ".join(f"{s.candidate}: [{s.reason}]" for s in steps)
    return AttentionChoice(
        kv_cache_dtype=kv,
        backend=None,
        label="no backend",
        mla=mla,
        sparse=sparse,
        head_size=hs,
        steps=tuple(steps),
        error=f"{NO_BACKEND} with kv_cache_dtype={kv}. Reasons: {{{reasons}}}.",
    )


def _select_0_11(
    cfg: ModelConfig, device: Device, env: KernelEnv, kv: str, mla: bool, sparse: bool, hs: int
) -> AttentionChoice:
    """vLLM 0.11 platforms/cuda.py:126-184 check_and_update_config, 240-390 get_attn_backend_cls."""
    cap = device.capability or 0

    def pick(name: str, label: str, note: str = "") -> AttentionChoice:
        return AttentionChoice(
            kv_cache_dtype=kv,
            backend=name,
            label=label,
            mla=mla,
            sparse=sparse,
            head_size=hs,
            notes=(note,) if note else (),
        )

    if mla:
        if sparse:
            return pick("FLASHMLA_SPARSE", "FlashMLA sparse")
        if cap == 100:
            return pick("CUTLASS_MLA", "CUTLASS MLA", "0.11 forces CUTLASS MLA on sm_100")
        if cap // 10 == 9 and env.has("flashmla"):
            return pick("FLASHMLA", "FlashMLA")
        if cap // 10 == 9 and env.has("fa3") and kv == "auto":
            return pick("FLASH_ATTN_MLA", "FlashAttention MLA (FA3)")
        return pick("TRITON_MLA", "Triton MLA")
    if cap == 100 and env.has("flashinfer"):
        return pick("FLASHINFER", "FlashInfer")
    if cap >= 80:
        if (kv == "fp8" or has_sinks(cfg)) and cap != 90:
            # 0.11 platforms/cuda.py:358-361: sinks or FP8 KV cache off sm_90 -> Triton
            return pick("TRITON_ATTN", "Triton", "0.11: sinks / FP8 KV cache off sm_90 use Triton")
        return pick("FLASH_ATTN", "FlashAttention " + ("3" if cap // 10 == 9 else "2"))
    return pick("FLEX_ATTENTION", "FlexAttention", "0.11: FlexAttention below sm_80")
