"""JSON output. Field names are a public contract: extend, never rename."""

from __future__ import annotations

import json
from typing import Any

from servecheck import __version__
from servecheck.render.check.kv_cache import kv_cache_dtype
from servecheck.render.kernels import module_fields
from servecheck.report import CheckReport


def to_dict(report: CheckReport) -> dict[str, Any]:
    cfg = report.model
    quant = report.quant
    return {
        "servecheck_version": __version__,
        "verdict": report.verdict,
        "location": report.location,
        # Where the files were read: local, the Hugging Face cache, or the Hub, with the commit.
        "source": report.checkpoint.source.as_dict() if report.checkpoint.source else None,
        "vllm_version": {
            "requested": report.version.requested,
            "mirrored": report.version.effective,
            "source": report.version.source,
        },
        "target": {
            "name": report.target.name,
            "kind": report.target.kind,
            "capability": report.target.capability,
            "count": report.target.count,
        },
        "model": {
            "architecture": cfg.architecture,
            "model_type": cfg.model_type,
            "family": report.family.name if report.family else None,
            "modelled": not report.inventory.derived_from_tensors,
            "tensors_inferred": report.checkpoint.config_only,
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads,
            "num_kv_heads": cfg.num_kv_heads,
            "head_dim": cfg.head_dim,
            "vocab_size": cfg.vocab_size,
            "num_experts": cfg.num_experts,
            "num_mtp_layers": cfg.num_nextn_predict_layers,
            "dtype": cfg.dtype,
            "total_bytes": report.total_bytes,
        },
        "quantization": {
            "method": quant.method,
            "source": quant.source,
            "ignore": list(quant.ignore_list),
            "kv_cache_scheme": quant.ct.kv_cache_scheme if quant.ct else None,
            "kv_cache_dtype": kv_cache_dtype(report),
            "groups": _groups(report),
        },
        "modules": [_module(report, r) for r in report.resolution.resolutions],
        "hardware": report.kernels.as_dict() if report.kernels is not None else None,
        "plan": _plan(report),
        "launch": report.launch.as_dict() if report.launch is not None else None,
        "findings": [f.as_dict() for f in report.findings],
        "notes": list(report.notes),
    }


def _plan(report: CheckReport) -> dict[str, Any] | None:
    if getattr(report, "plan", None) is None:
        return None
    from servecheck.render.plan.json_out import plan_to_dict

    return plan_to_dict(report.plan)


def _groups(report: CheckReport) -> list[dict[str, Any]]:
    ct = report.quant.ct
    if ct is None:
        return []
    out: dict[str, dict[str, Any]] = {}
    for target, ts in ct.targets.items():
        g = out.setdefault(
            ts.group,
            {
                "name": ts.group,
                "targets": [],
                "weights": ts.weights.describe(),
                "input_activations": ts.input_activations.describe()
                if ts.input_activations
                else None,
                "output_activations": (
                    ts.output_activations.describe() if ts.output_activations else None
                ),
                "format": ct.scheme_format(ts),
            },
        )
        g["targets"].append(target)
    return list(out.values())


def _module(report: CheckReport, r) -> dict[str, Any]:
    m = r.module
    return {
        "name": m.name,
        "kind": m.kind,
        "layer": m.layer,
        "vllm_class": m.layer_class,
        "scheme": r.scheme,
        "min_capability": r.min_capability,
        "method": r.method,
        "ignored": r.ignored,
        "target": r.target,
        "matched_by": r.match_via,
        "moe_method": r.moe_method,
        "mtp": m.mtp,
        "bytes": report.module_bytes.get(m.name, 0),
        "error": r.error,
        **module_fields(report.kernels, m.name, m.kind),
    }


def render_json(report: CheckReport) -> str:
    return json.dumps(to_dict(report), indent=2)
