"""Bytes per module when the checkpoint has no safetensors (config-only input): computed from
the tensors each module's resolved scheme implies, at the model's dtype where it may be stored
so."""

from __future__ import annotations

from servecheck.checks.expected import expert_specs, module_tensors, per_expert
from servecheck.model.config import ModelConfig
from servecheck.model.inventory import Inventory
from servecheck.quant.resolve import ResolutionResult
from servecheck.source.safetensors import DTYPE_BITS


def estimated_bytes(
    inv: Inventory, resolution: ResolutionResult, cfg: ModelConfig
) -> dict[str, int]:
    """Bytes per module computed from the tensors its scheme implies (config-only input).
    Experts stored one tensor set each are all alike: one expert's bytes times their count."""
    model_dtype = _SAFETENSORS_DTYPE.get(cfg.dtype or "bfloat16", "BF16")
    by_res = resolution.by_name()
    out: dict[str, int] = {}
    for m in inv.modules:
        res = by_res[m.name]
        if per_expert(m):
            assert m.experts is not None
            specs = [s for ss in expert_specs(m, res).values() for s in ss]
            total = m.experts.num_experts * sum(
                _bytes(s.dtypes, s.shape, model_dtype) for s in specs
            )
        else:
            total = sum(_bytes(e.dtypes, e.shape, model_dtype) for e in module_tensors(m, res))
        if total:
            out[m.name] = total
    return out


def _bytes(dtypes: frozenset[str] | None, shape: tuple[int, ...] | None, model_dtype: str) -> int:
    """One tensor's bytes, stored at the model's dtype where its spec allows (0: no shape)."""
    if shape is None:
        return 0
    dtype = model_dtype if dtypes is None or model_dtype in dtypes else sorted(dtypes)[0]
    n = 1
    for d in shape:
        n *= d
    return (n * DTYPE_BITS[dtype] + 7) // 8


_SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "half": "F16"}
