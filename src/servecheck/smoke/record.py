"""A run of vLLM as a truth record (the schema of tests/data/gpu_truth/, README there).

    build_record(log_text, about, exit_code, wall_s, driver, timed_out) -> dict
    smoke_record(run, model, serve_args, driver)                           -> dict
    write_record(record, folder)                                           -> Path (atomic)

`about` says what ran (case, kind, note, model, source, build, tokenizer, llm_kwargs, generate);
everything else comes from the log: the child's own JSON lines and vLLM's messages. Rebuilding a
record from its log with a newer parser needs no new run (benchmarks/gpu_truth/collect.py).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from servecheck.errors import WriteError
from servecheck.smoke.logparse import parse_log

SCHEMA = 1
# The vLLM settings a record's llm_kwargs carries for a smoke run: those the tests replay.
SETTINGS = (
    "max_model_len",
    "gpu_memory_utilization",
    "kv_cache_memory_bytes",
    "kv_cache_dtype",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enforce_eager",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "load_format",
)


def build_record(
    log_text: str,
    about: dict[str, Any],
    exit_code: int | None,
    wall_s: float,
    driver: dict[str, Any],
    timed_out: bool,
) -> dict[str, Any]:
    parsed = parse_log(log_text)
    child = parsed["child"]
    env_info: dict[str, Any] = child.get("env") or {}
    result: dict[str, Any] = child.get("result") or {}
    outcome = "timeout" if timed_out else (result.get("outcome") or "crashed")
    cap = env_info.get("capability")
    err = result.get("error")
    llm_kwargs = about.get("llm_kwargs") or {}
    rec: dict[str, Any] = {
        "schema": SCHEMA,
        **{k: about.get(k) for k in ("case", "kind", "note", "model", "source", "build")},
        "tokenizer": about.get("tokenizer"),
        "llm_kwargs": llm_kwargs,
        "generate": about.get("generate", False),
        "env": {k: v for k, v in (about.get("env") or {}).items() if k.startswith("VLLM_")},
        "vllm_version": env_info.get("vllm"),
        "torch_version": env_info.get("torch"),
        "cuda_version": env_info.get("torch_cuda"),
        "driver": driver,
        "gpu": {
            "name": env_info.get("gpu_name"),
            "capability": f"{cap[0]}.{cap[1]}" if cap else None,
            "capability_int": cap[0] * 10 + cap[1] if cap else None,
            "total_bytes": env_info.get("gpu_total_bytes"),
            "free_bytes_at_start": env_info.get("free_bytes_at_start"),
        },
        "packages": {k[4:]: v for k, v in env_info.items() if k.startswith("has_")},
        "outcome": outcome,
        "exit_code": exit_code,
        "error_class": err["class"] if err else None,
        "error_message": err["message"] if err else None,
        "root_error_line": parsed["root_error_line"],
        "error": err,
        "kernels": {
            "selected": parsed["selected"],
            "moe_backends": parsed["moe_backends"],
            "attention_backends": parsed["attention_backends"],
            "flash_attn_version": parsed.get("flash_attn_version"),
            "model_runner": parsed.get("model_runner"),
        },
        "modules": result.get("modules"),
        "memory": {
            **parsed["memory"],
            "exact": result.get("memory_exact"),
            "cache_config": result.get("cache_config"),
        },
        "cuda_graphs": {
            "enabled": not llm_kwargs.get("enforce_eager", False),
            "cudagraph_mode": result.get("cudagraph_mode"),
            **parsed["graphs"],
        },
        "generated": result.get("generated"),
        "warnings": parsed["warnings"],
        "log_excerpt": parsed["excerpt"],
        "wall_s": round(wall_s, 1),
    }
    for k in ("modules_error", "memory_exact_error", "effective_error"):
        if k in result:
            rec[k] = result[k]
    return rec


def smoke_record(
    log_text: str,
    *,
    model: str,
    serve_args: list[str],
    exit_code: int | None,
    wall_s: float,
    timed_out: bool,
    config: dict[str, Any] | None,
    driver: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one `servecheck smoke` run. Its llm_kwargs are the settings the engine
    resolved (what `LLM(...)` would need to repeat the run); `config` (the model's config.json)
    lets the tests predict the model without its weights."""
    parsed = parse_log(log_text)
    child = parsed["child"]
    given = (child.get("args") or {}).get("engine_kwargs") or {}
    effective = (child.get("result") or {}).get("effective") or {}
    settings = {**given, **{k: effective[k] for k in SETTINGS if effective.get(k) is not None}}
    if not settings.get("kv_cache_memory_bytes"):
        settings.pop("kv_cache_memory_bytes", None)
    load_format = str(settings.get("load_format") or "auto")
    name = record_name(model, serve_args)
    about = {
        "case": name,
        "kind": "dummy" if load_format.endswith("dummy") else "smoke",
        "note": "servecheck smoke",
        "model": model,
        "source": model,
        "build": None,
        "tokenizer": given.get("tokenizer"),
        "llm_kwargs": _jsonable(settings),
        "generate": True,
        "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_")},
    }
    from servecheck.smoke.runner import CHILD_ENV

    about["env"].update({k: v for k, v in CHILD_ENV.items() if k.startswith("VLLM_")})
    rec = build_record(log_text, about, exit_code, wall_s, driver or {}, timed_out)
    rec["record"] = name
    rec["serve_args"] = list(serve_args)
    rec["config"] = config
    return rec


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def record_name(model: str, serve_args: list[str]) -> str:
    """smoke-<model folder>[-<short hash of the arguments>]: stable for the same run."""
    import hashlib

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or "model").strip("-")
    if not serve_args:
        return f"smoke-{base}"
    digest = hashlib.sha1("\0".join(serve_args).encode()).hexdigest()[:8]
    return f"smoke-{base}-{digest}"


def write_record(record: dict[str, Any], folder: Path) -> Path:
    """Write <folder>/<record>.json atomically (sorted keys, as the committed records are).

    Only a file (or link) of that name is ever replaced; a failed write is a WriteError and
    leaves the folder as it was."""
    path = folder / f"{record['record']}.json"
    if (path.exists() or path.is_symlink()) and not (path.is_file() or path.is_symlink()):
        raise WriteError(f"{path} exists and is not a file; not replacing it")
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            Path(tmp).unlink(missing_ok=True)
    return path
