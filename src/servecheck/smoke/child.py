"""The script that runs inside the vLLM interpreter: load a model, generate, report.

    python child.py SPEC.json

Standard library and vLLM only (it runs in whatever Python has vLLM installed, which need not
have servecheck). SPEC is a JSON object:

    model        the model folder (or Hub id) as given to `vllm serve`
    serve_args   the `vllm serve` arguments, parsed by the installed vLLM's own serve parser
    llm_kwargs   or: `LLM(...)` keyword arguments used as they are (the GPU-truth harness)
    generate     ask for `max_tokens` greedy tokens after loading (default true)
    prompt, max_tokens

Everything goes to standard output, which the parent keeps as the log, interleaved with vLLM's
own lines. The child's own lines are one JSON object each after a marker: `SERVECHECK_STAGE`
(what it starts now), `SERVECHECK_ARGS` (how the arguments were read), `SERVECHECK_ENV`
(versions, device), `SERVECHECK_RESULT` (outcome, error, modules, memory; always the last).

Why `LLM(...)` and not `vllm serve` plus an HTTP request: the engine core runs in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0, set by the parent), so the root exception arrives here with
its class and chain instead of "Engine core initialization failed"; the loaded model can be
asked which quantization method, scheme and kernel each module got; the worker's exact memory
figures are readable; and no port is opened. `vllm serve`'s behaviour is kept where it differs:
the arguments go through vLLM's serve parser, and the batch limits take serve's defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MARK = "SERVECHECK_"
DEFAULT_PROMPT = "Hello world"


def emit(kind: str, data: Any) -> None:
    print(f"{MARK}{kind} {json.dumps(data, default=str)}", flush=True)


# ------------------------------------------------------------------------------ arguments ----


def _parser() -> Any:
    """vLLM's `vllm serve` parser (frontend and engine arguments) for the installed release."""
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # releases before 0.12
        from vllm.utils import FlexibleArgumentParser  # type: ignore[attr-defined,no-redef]
    for where in ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"):
        try:
            module = __import__(where, fromlist=["make_arg_parser"])
        except ImportError:
            continue
        return module.make_arg_parser(FlexibleArgumentParser()), True
    from vllm.engine.arg_utils import EngineArgs

    return EngineArgs.add_cli_args(FlexibleArgumentParser()), False


def serve_kwargs(model: str, serve_args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`LLM(...)` keyword arguments equal to what `vllm serve MODEL ARGS` sets, and a note of
    what was parsed (frontend-only arguments are listed as not applied)."""
    from vllm.engine.arg_utils import EngineArgs

    parser, full = _parser()
    argv = [model, *serve_args] if full else ["--model", model, *serve_args]
    ns = parser.parse_args(argv)
    if getattr(ns, "model_tag", None):
        ns.model = ns.model_tag  # vLLM entrypoints/cli/serve.py: the positional model wins
    engine = EngineArgs.from_cli_args(ns)
    names = [f.name for f in dataclasses.fields(EngineArgs)]
    # only what the command line set: the LLM class fills the rest with the same defaults
    given = {n for n in names if n in vars(ns) and getattr(ns, n) != parser.get_default(n)}
    kwargs = {n: getattr(engine, n) for n in sorted(given - {"model"})}
    frontend = sorted(
        k
        for k, v in vars(ns).items()
        if k not in names and k != "model_tag" and v != parser.get_default(k)
    )
    return kwargs, {"serve_parser": full, "engine_kwargs": kwargs, "not_applied": frontend}


def use_serve_batch_defaults() -> bool:
    """Give the LLM class `vllm serve`'s default batch limits (max_num_batched_tokens,
    max_num_seqs), which differ by usage context (vLLM 0.24 engine/arg_utils.py
    get_batch_defaults). Releases without get_batch_defaults keep the LLM class's."""
    from vllm.engine.arg_utils import EngineArgs

    original = getattr(EngineArgs, "get_batch_defaults", None)
    if original is None:
        return False
    from vllm.usage.usage_lib import UsageContext

    def serve_defaults(world_size: int) -> Any:
        tokens, seqs = original(world_size)
        for table in (tokens, seqs):
            if UsageContext.OPENAI_API_SERVER in table:
                table[UsageContext.LLM_CLASS] = table[UsageContext.OPENAI_API_SERVER]
        return tokens, seqs

    EngineArgs.get_batch_defaults = staticmethod(serve_defaults)  # type: ignore[method-assign]
    return True


# -------------------------------------------------------------------------- introspection ----


def _describe(obj: Any) -> dict[str, str]:
    """The kernel / backend / experts attributes of a quant method or scheme, by name."""
    out: dict[str, str] = {}
    for attr, val in sorted(vars(obj).items()):
        low = attr.lower()
        if val is None or (isinstance(val, (int, float, bool, str)) and "backend" not in low):
            continue
        tname = type(val).__name__
        if isinstance(val, enum.Enum):
            if any(k in low for k in ("backend", "kernel", "strategy", "type", "mode")):
                out[attr] = str(val)
        elif isinstance(val, str):
            out[attr] = val
        elif isinstance(val, type):
            if any(k in low for k in ("backend", "kernel", "impl", "cls")):
                out[attr] = val.__name__
        elif any(k in low for k in ("kernel", "backend", "experts", "impl", "linear")) or (
            "Kernel" in tname or "Experts" in tname or "Backend" in tname
        ):
            out[attr] = tname
            if "Kernel" in tname or "Experts" in tname:
                inner = getattr(val, "fused_experts", None) or getattr(val, "experts", None)
                if inner is not None and not isinstance(inner, (list, tuple)):
                    out[attr + ".experts"] = type(inner).__name__
    return out


def introspect(model: Any) -> list[dict[str, Any]]:
    """Per module: layer class, quant method, scheme, kernel / backend attributes, attention
    backend, weight dtype; grouped by identical description (count and up to 4 names)."""
    groups: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        qm = getattr(mod, "quant_method", None)
        if qm is None and not hasattr(mod, "attn_backend"):
            continue
        desc: dict[str, Any] = {"layer_class": type(mod).__name__}
        if qm is not None:
            desc["quant_method"] = type(qm).__name__
            desc["quant_method_attrs"] = _describe(qm)
            scheme = getattr(mod, "scheme", None)
            if scheme is not None:
                desc["scheme"] = type(scheme).__name__
                desc["scheme_attrs"] = _describe(scheme)
        if hasattr(mod, "attn_backend"):
            ab = mod.attn_backend
            desc["attn_backend"] = getattr(ab, "__name__", type(ab).__name__)
            if callable(getattr(ab, "get_name", None)):
                desc["attn_backend_name"] = str(ab.get_name())
            if hasattr(mod, "impl"):
                desc["attn_impl"] = type(mod.impl).__name__
            if hasattr(mod, "kv_cache_dtype"):
                desc["kv_cache_dtype"] = str(mod.kv_cache_dtype)
        w = getattr(mod, "weight", None)
        if w is not None and hasattr(w, "dtype"):
            desc["weight_dtype"] = str(w.dtype).replace("torch.", "")
        key = json.dumps(desc, sort_keys=True)
        g = groups.setdefault(key, {**desc, "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < 4:
            g["examples"].append(name)
    return list(groups.values())


def worker_memory(worker: Any) -> dict[str, int]:
    """The worker's exact memory figures (bytes) after start-up."""
    out: dict[str, int] = {}
    worker = getattr(worker, "worker", None) or worker  # WorkerWrapperBase -> Worker
    runner = getattr(worker, "model_runner", None)
    wanted = (
        (runner, ("model_memory_usage",)),
        (
            worker,
            (
                "available_kv_cache_memory_bytes",
                "requested_memory",
                "non_torch_memory",
                "peak_activation_memory",
                "cudagraph_memory_estimate",
            ),
        ),
    )
    for obj, attrs in wanted:
        for a in attrs:
            v = getattr(obj, a, None) if obj is not None else None
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[a] = int(v)
    snap = getattr(worker, "init_snapshot", None)
    for a in ("total_memory", "free_memory", "cuda_memory", "torch_memory"):
        v = getattr(snap, a, None) if snap is not None else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out["init_" + a] = int(v)
    return out


def effective_config(llm: Any) -> dict[str, Any]:
    """The settings the engine ended up with (defaults resolved)."""
    cfg = llm.llm_engine.vllm_config
    mc, cc, sc, pc = cfg.model_config, cfg.cache_config, cfg.scheduler_config, cfg.parallel_config
    comp = getattr(cfg, "compilation_config", None)
    return {
        "max_model_len": mc.max_model_len,
        "dtype": str(mc.dtype).replace("torch.", ""),
        "quantization": mc.quantization,
        "enforce_eager": mc.enforce_eager,
        "gpu_memory_utilization": cc.gpu_memory_utilization,
        "kv_cache_memory_bytes": getattr(cc, "kv_cache_memory_bytes", None),
        "kv_cache_dtype": str(cc.cache_dtype),
        "block_size": cc.block_size,
        "num_gpu_blocks": cc.num_gpu_blocks,
        "max_num_seqs": sc.max_num_seqs,
        "max_num_batched_tokens": sc.max_num_batched_tokens,
        "tensor_parallel_size": pc.tensor_parallel_size,
        "pipeline_parallel_size": pc.pipeline_parallel_size,
        "enable_expert_parallel": getattr(pc, "enable_expert_parallel", None),
        "load_format": str(getattr(cfg.load_config, "load_format", "")),
        "cudagraph_mode": str(getattr(comp, "cudagraph_mode", None)) if comp else None,
    }


# ------------------------------------------------------------------------------ the run ----


def probe_env() -> dict[str, Any]:
    """Versions and the device, before the engine starts."""
    info: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu_name"] = torch.cuda.get_device_name(0)
            info["capability"] = list(torch.cuda.get_device_capability(0))
            info["gpu_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
            info["gpu_count"] = torch.cuda.device_count()
            info["free_bytes_at_start"] = torch.cuda.mem_get_info()[0]
        import vllm

        info["vllm"] = vllm.__version__
        from vllm.platforms import current_platform

        info["platform"] = str(getattr(current_platform, "device_type", "") or "")
        if info["platform"] == "cpu":
            info.update(cpu_facts(torch))
        for mod in ("flashinfer", "deep_gemm", "triton_kernels", "vllm.third_party.deep_gemm"):
            try:
                __import__(mod)
                info["has_" + mod] = True
            except Exception as e:
                info["has_" + mod] = f"{type(e).__name__}: {str(e)[:120]}"
    except Exception as e:
        info["probe_error"] = f"{type(e).__name__}: {e}"
    return info


def cpu_facts(torch: Any) -> dict[str, Any]:
    """What vLLM's CPU backend keys its kernels on: torch's CPU capability and ISA checks, and
    the native library it loads (vLLM 0.32 platforms/cpu.py CpuPlatform.import_kernels)."""
    out: dict[str, Any] = {}
    try:
        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        isa = {
            "avx512": torch.cpu._is_avx512_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx_tile": torch.cpu._is_amx_tile_supported(),
        }
    except Exception as e:
        out["cpu_probe_error"] = f"{type(e).__name__}: {e}"
        return out
    out["torch_isa"] = isa
    if not isa["avx512"]:
        out["vllm_native_lib"] = "vllm._C_AVX2"
    else:
        out["vllm_native_lib"] = "vllm._C" if isa["avx512_bf16"] else "vllm._C_AVX512"
    return out


def error_dict(e: BaseException) -> dict[str, Any]:
    chain = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 6:
        chain.append({"class": type(cur).__name__, "message": str(cur)[:2000]})
        cur = cur.__cause__ or cur.__context__
    frames = traceback.extract_tb(e.__traceback__)
    return {
        "class": type(e).__name__,
        "module": type(e).__module__,
        "message": str(e)[:4000],
        "chain": chain,
        "raised_at": [
            f"{Path(f.filename).as_posix().split('site-packages/')[-1].split('/site/')[-1]}"
            f":{f.lineno} {f.name}"
            for f in frames[-6:]
        ],
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"outcome": None}
    t0 = time.time()
    try:
        emit("STAGE", {"stage": "starting"})
        emit("ENV", probe_env())
        from vllm import LLM, SamplingParams

        if spec.get("llm_kwargs") is not None:
            kwargs = dict(spec["llm_kwargs"])
        else:
            kwargs, parsed = serve_kwargs(spec["model"], list(spec.get("serve_args") or ()))
            parsed["serve_batch_defaults"] = use_serve_batch_defaults()
            emit("ARGS", parsed)
        tp = int(kwargs.get("tensor_parallel_size") or 1) * int(
            kwargs.get("pipeline_parallel_size") or 1
        )
        if tp > 1:  # apply_model sends a function to the worker processes
            os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        emit("STAGE", {"stage": "loading"})
        llm = LLM(model=spec["model"], **kwargs)
        result["init_s"] = round(time.time() - t0, 2)
        result["outcome"] = "loaded"
        for key, call in (
            ("effective", lambda: effective_config(llm)),
            ("modules", lambda: llm.apply_model(introspect)[0]),
            ("memory_exact", lambda: llm.collective_rpc(worker_memory)[0]),
        ):
            try:
                result[key] = call()
            except Exception as e:
                result[key + "_error"] = repr(e)[:400]
        eff = result.get("effective") or {}
        result["cache_config"] = {
            "num_gpu_blocks": eff.get("num_gpu_blocks"),
            "block_size": eff.get("block_size"),
            "cache_dtype": eff.get("kv_cache_dtype"),
        }
        result["cudagraph_mode"] = eff.get("cudagraph_mode")
        if spec.get("generate", True):
            emit("STAGE", {"stage": "generating"})
            sp = SamplingParams(
                max_tokens=int(spec.get("max_tokens", 8)), temperature=0.0, ignore_eos=True
            )
            out = llm.generate([spec.get("prompt") or DEFAULT_PROMPT], sp, use_tqdm=False)
            result["generated"] = {
                "token_ids": list(out[0].outputs[0].token_ids),
                "text": out[0].outputs[0].text,
            }
    except BaseException as e:  # report every failure, SystemExit from argparse included
        result["outcome"] = "failed" if result["outcome"] is None else "failed_after_load"
        result["error"] = error_dict(e)
        traceback.print_exc(file=sys.stdout)
    result["wall_s"] = round(time.time() - t0, 2)
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    result = run(spec)
    emit("STAGE", {"stage": "done"})
    emit("RESULT", result)
    sys.stdout.flush()
    os._exit(0)  # skip vLLM's atexit teardown: its failures would only add noise


if __name__ == "__main__":
    sys.exit(main(sys.argv))
