"""What a parsed launch means for the prediction: layout, serving options, findings.

Every argument is either used (the layout, memory and kernel settings below), known to have no
effect on loading or fitting (knowledge/launch.toml), or reported as not modelled (L003).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from servecheck.findings.registry import Finding
from servecheck.findings.rules import launch as rules
from servecheck.knowledge import load_toml
from servecheck.launch.parse import Launch
from servecheck.launch.table import arg_table
from servecheck.plan.config import ServeOptions

# Arguments the prediction uses (EngineArgs fields).
MODELLED = frozenset(
    {
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "data_parallel_size_local",
        "enable_expert_parallel",
        "nnodes",
        "max_model_len",
        "gpu_memory_utilization",
        "kv_cache_dtype",
        "quantization",
        "dtype",
        "enforce_eager",
        "max_num_seqs",
        "max_num_batched_tokens",
        "cpu_offload_gb",
        "kv_cache_memory_bytes",
        "hf_overrides",
        "rope_scaling",
        "rope_theta",
        "speculative_config",
        "spec_method",
        "spec_tokens",
        "block_size",
        "compilation_config",
        "optimization_level",
        "disable_sliding_window",
        "limit_mm_per_prompt",
        "moe_backend",
    }
)
MTP_METHODS = ("mtp", "deepseek_mtp", "glm4_moe_mtp", "qwen3_next_mtp", "ernie_mtp", "mimo_mtp")
DRAFTLESS_METHODS = ("ngram", "ngram_gpu", "suffix")


@functools.cache
def _inert() -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    data = load_toml("launch.toml")
    return (
        frozenset(data["inert_groups"]),
        frozenset(data["inert_dests"]),
        tuple(data["modelled_load_formats"]),
    )


@dataclass(frozen=True)
class LaunchSettings:
    """The launch as the prediction uses it."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: bool = False
    nodes: int = 1
    options: ServeOptions = field(default_factory=ServeOptions)
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    quantization: str | None = None
    dtype: str | None = None
    disable_sliding_window: bool = False
    speculative: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def layout_label(self) -> str:
        parts = [f"TP{self.tp}"]
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.dp > 1:
            parts.append(f"DP{self.dp}")
        return "×".join(parts) + ("+EP" if self.ep else "")


def settings_from(launch: Launch, ver: str) -> LaunchSettings:
    """Interpret `launch` (parsed for vLLM `ver`): layout, options and the findings about it."""
    findings = _parse_findings(launch, ver)
    get = launch.get
    opt = get("optimization_level")
    compilation = get("compilation_config") or {}
    no_graphs = bool(get("enforce_eager")) or str(opt) == "0" or _graphs_off(compilation)
    spec = _speculative(launch)
    mtp = bool(spec and str(spec.get("method", "")).lower() in MTP_METHODS)
    kv = get("kv_cache_dtype") or "auto"
    env = dict(launch.env)
    options = ServeOptions(
        max_model_len=_positive(get("max_model_len")),
        kv_cache_dtype=str(kv),
        gpu_memory_utilization=get("gpu_memory_utilization"),
        max_num_batched_tokens=get("max_num_batched_tokens"),
        max_num_seqs=get("max_num_seqs"),
        block_size=get("block_size"),
        enforce_eager=no_graphs,
        speculative=mtp,
        moe_backend=_moe_backend(get("moe_backend")),
        enable_expert_parallel=get("enable_expert_parallel"),
        cpu_offload_gb=float(get("cpu_offload_gb") or 0.0),
        kv_cache_memory_bytes=get("kv_cache_memory_bytes"),
        allow_long_max_model_len=env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "").lower()
        in ("1", "true"),
        text_only=bool(get("language_model_only")) or text_only_limits(get("limit_mm_per_prompt")),
    )
    dp = int(get("data_parallel_size") or 1)
    nodes = int(get("nnodes") or 1)
    if get("data_parallel_size_local") and dp > int(get("data_parallel_size_local")):
        nodes = max(nodes, -(-dp // int(get("data_parallel_size_local"))))
    findings += _not_modelled(launch, spec, ver)
    overrides = dict(get("hf_overrides")) if isinstance(get("hf_overrides"), dict) else {}
    # vLLM 0.10 config.py ModelConfig.__post_init__: --rope-scaling / --rope-theta (until
    # 0.11) are added to the hf_overrides
    if get("rope_scaling"):
        overrides["rope_scaling"] = get("rope_scaling")
    if get("rope_theta") is not None:
        overrides["rope_theta"] = get("rope_theta")
    return LaunchSettings(
        tp=int(get("tensor_parallel_size") or 1),
        pp=int(get("pipeline_parallel_size") or 1),
        dp=dp,
        ep=bool(get("enable_expert_parallel")),
        nodes=nodes,
        options=options,
        hf_overrides=overrides,
        quantization=get("quantization"),
        dtype=get("dtype") if get("dtype") not in (None, "auto") else None,
        disable_sliding_window=bool(get("disable_sliding_window")),
        speculative=spec,
        env=env,
        findings=tuple(findings),
    )


def text_only_limits(limits: Any) -> bool:
    """--limit-mm-per-prompt sets image and video to 0: vLLM builds no vision tower (0.24
    model_executor/models/interfaces.py _mark_tower_model skips a tower whose modalities are
    all limited to 0; an unset modality defaults to 999, so both must be given)."""
    if isinstance(limits, str):
        try:
            limits = json.loads(limits)
        except (json.JSONDecodeError, RecursionError, ValueError):
            return False
    if not isinstance(limits, dict):
        return False

    def count(v: Any) -> Any:
        return v.get("count") if isinstance(v, dict) else v

    return all(m in limits and count(limits[m]) == 0 for m in ("image", "video"))


def _positive(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value > 0 else None


def _graphs_off(compilation: Any) -> bool:
    if not isinstance(compilation, dict):
        return False
    mode = str(compilation.get("cudagraph_mode", "")).upper()
    level_zero = compilation.get("level") == 0 or compilation.get("mode") == 0
    return mode == "NONE" or (level_zero and "cudagraph_mode" not in compilation)


def _moe_backend(value: Any) -> str | None:
    if value in (None, "auto"):
        return None
    return str(value).lower().replace("-", "_")


def _speculative(launch: Launch) -> dict[str, Any] | None:
    spec = launch.get("speculative_config")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except (json.JSONDecodeError, RecursionError, ValueError):
            spec = None
    spec = dict(spec) if isinstance(spec, dict) else {}
    # vLLM 0.33 --spec-method / --spec-model / --spec-tokens fill the same config
    if launch.get("spec_method"):
        spec.setdefault("method", launch.get("spec_method"))
    if launch.get("spec_model"):
        spec.setdefault("model", launch.get("spec_model"))
    if launch.get("spec_tokens"):
        spec.setdefault("num_speculative_tokens", launch.get("spec_tokens"))
    return spec or None


def _parse_findings(launch: Launch, ver: str) -> list[Finding]:
    out: list[Finding] = []
    release = launch.release
    if launch.unknown:
        table = arg_table(launch.requested)
        hints = [_did_you_mean(u.split()[0], table.by_option) for u in launch.unknown]
        hints = [h for h in hints if h]
        suggestion = (
            ("Did you mean " + ", ".join(hints) + "?")
            if hints
            else (f"Drop them, or check `vllm serve --help` for vLLM {release}.")
        )
        out.append(
            rules.UnknownArgument.make(
                list(launch.unknown),
                release=release,
                args=", ".join(launch.unknown),
                raw=" ".join(launch.unknown),
                suggestion=suggestion,
                ver=ver,
            )
        )
    for option, message in launch.errors:
        detail = message
        out.append(
            rules.InvalidArgumentValue.make(
                [option],
                option=option,
                detail=detail,
                suggestion=_value_fix(message),
                ver=ver,
            )
        )
    return out


def _did_you_mean(option: str, by_option: dict) -> str | None:
    import difflib

    if not option.startswith("-"):
        return None
    longs = [o for o in by_option if o.startswith("--")]
    close = difflib.get_close_matches(option.replace("_", "-"), longs, n=1, cutoff=0.8)
    return f"{option} -> {close[0]}" if close else None


def _value_fix(message: str) -> str:
    if "expected" in message:
        return "Give the option its value."
    if "invalid choice" in message:
        return "Use one of the listed values."
    if "Decimals are not allowed" in message:
        return "Use a decimal suffix (k, m, g) with decimals, or a whole number with K, M, G."
    if "JSON" in message:
        return "Quote the JSON for the shell: --option '{\"key\": value}'."
    return "Write the value as the message says."


def _not_modelled(launch: Launch, spec: dict[str, Any] | None, ver: str) -> list[Finding]:
    groups, dests, load_formats = _inert()
    table = arg_table(launch.requested)
    listed = []
    for dest in launch.values:
        if dest in MODELLED or dest in dests:
            continue
        arg = table.by_dest.get(dest)
        if arg is not None and arg.group in groups:
            continue
        listed.append(launch.option(dest))
    load_format = launch.get("load_format")
    if load_format and load_format not in load_formats:
        listed.append(f"--load-format {load_format}")
    method = str((spec or {}).get("method", "")).lower()
    if spec and method not in MTP_METHODS and method not in DRAFTLESS_METHODS:
        listed.append(f"--speculative-config method {method or spec.get('model', '?')}")
    dtype = launch.get("dtype")
    if dtype in ("float", "float32"):
        listed.append(f"--dtype {dtype}")
    if not listed:
        return []
    return [rules.ArgumentNotModelled.make(listed, args=", ".join(listed), ver=ver)]
