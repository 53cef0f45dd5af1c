"""Bytes per module when the checkpoint has no safetensors (config-only input): computed from
the tensors each module's resolved scheme implies, at the model's dtype where it may be stored
so."""

from __future__ import annotations

from servecheck.checks.expected import module_tensors
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Inventory
from servecheck.quant.resolve import ResolutionResult
from servecheck.source.safetensors import DTYPE_BITS


def estimated_bytes(
    inv: Inventory, resolution: ResolutionResult, cfg: ModelConfig
) -> dict[str, int]:
    """Bytes per module computed from the tensors its scheme implies (config-only input)."""
    model_dtype = _SAFETENSORS_DTYPE.get(cfg.dtype or "bfloat16", "BF16")
    by_res = resolution.by_name()
    out: dict[str, int] = {}
    for m in inv.modules:
        total = 0
        for exp in module_tensors(m, by_res[m.name]):
            if exp.shape is None:
                continue
            if exp.dtypes is None or model_dtype in exp.dtypes:
                dtype = model_dtype
            else:
                dtype = sorted(exp.dtypes)[0]
            n = 1
            for d in exp.shape:
                n *= d
            total += (n * DTYPE_BITS[dtype] + 7) // 8
        if total:
            out[m.name] = total
    return out


_SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "half": "F16"}
