"""`servecheck plan --format json` (field names are a public contract: extend, don't rename)."""

from __future__ import annotations

from typing import Any

from servecheck.plan.config import GIB
from servecheck.plan.memory import LayoutPlan
from servecheck.plan.planner import Plan


def _g(n: float) -> float:
    return round(n / GIB, 2)


def layout_to_dict(p: LayoutPlan, plan: Plan) -> dict[str, Any]:
    lay = p.layout
    context = plan.options.max_model_len or plan.max_model_len
    return {
        "layout": lay.label,
        "tensor_parallel_size": lay.tp,
        "pipeline_parallel_size": lay.pp,
        "enable_expert_parallel": lay.ep,
        "data_parallel_size": lay.dp,
        "gpus": lay.world,
        "nodes": lay.nodes,
        "valid": p.valid,
        "status": p.status,
        "fits": p.fits,
        "weights_gib_per_gpu": _g(p.weights_per_gpu) if p.stages else None,
        "kv_cache_gib_per_gpu": _g(p.available_kv) if p.stages else None,
        "kv_cache_tokens": p.kv_tokens if p.available_kv > 0 else 0,
        "max_concurrency": round(p.concurrency, 2),
        "concurrency_context": context,
        "longest_context": p.longest,
        "stages": [
            {
                "stage": s.stage,
                "layers": list(s.weights.layers),
                "weights_gib": _g(s.weights.total),
                "weights_by_kind_gib": {k: _g(v) for k, v in sorted(s.weights.by_kind.items())},
                "rotary_cache_gib": _g(s.weights.buffers),
                "activation_peak_gib": _g(s.overheads.activation),
                "activation_terms_gib": {k: _g(v) for k, v in s.overheads.parts},
                "model_runner": s.overheads.runner,
                "non_torch_gib": _g(s.overheads.non_torch),
                "cudagraph_gib": _g(s.overheads.cudagraph),
                "cudagraph_in_budget": s.overheads.cudagraph_in_budget,
                "kv_cache_gib": _g(s.available_kv),
                "kv_bytes_per_token": s.kv_bytes_per_token,
                "num_blocks": s.capacity.num_blocks,
                "kv_cache_tokens": s.capacity.tokens,
            }
            for s in p.stages
        ],
        "problems": [f.as_dict() for f in p.problems],
        "findings": [f.as_dict() for f in p.findings],
    }


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    rec = plan.recommended
    return {
        "gpu": plan.gpu.name,
        "gpus_per_node": plan.gpus_per_node,
        "nodes": plan.nodes,
        "gpu_memory_gib": _g(plan.cuda_total),
        "gpu_memory_source": plan.cuda_total_source,
        "vllm_version": plan.version,
        "memory_model_era": plan.era.start,
        "gpu_memory_utilization": (
            plan.options.gpu_memory_utilization or plan.era.gpu_memory_utilization
        ),
        "max_model_len": plan.max_model_len,
        "max_model_len_derived": plan.max_len_derived,
        "max_model_len_key": plan.max_len_key,
        "max_model_len_steps": list(plan.max_len.steps) if plan.max_len else [],
        "kv_cache_dtype": plan.kv_dtype,
        "block_size": plan.block_size,
        "max_num_batched_tokens": plan.batch.max_num_batched_tokens,
        "max_num_seqs": plan.batch.max_num_seqs,
        "fits": plan.fits,
        "recommended": rec.layout.label if rec else None,
        "runner_up": plan.runner_up.layout.label if plan.runner_up else None,
        "choice": plan.choice or None,
        "exact_launch": plan.exact,
        "alternatives": [a.as_dict() for a in plan.alternatives],
        "recommended_max_model_len": plan.recommended_len,
        "command": plan.command.text() if plan.command else None,
        "layouts": [layout_to_dict(p, plan) for p in plan.layouts],
        "moe_tp_sizes": list(plan.moe_tp_table),
        "estimated_terms": list(plan.estimated),
        "notes": list(plan.notes),
        "findings": [f.as_dict() for f in plan.findings],
    }
