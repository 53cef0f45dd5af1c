"""servecheck's memory plan against public vLLM start-up logs (tests/data/calibration).

For every record: the weights per GPU ("Model loading took"), the memory left for the KV cache
("Available KV cache memory"), the KV-cache token capacity ("GPU KV cache size", or V0's
blocks x block size) and whether the engine started, predicted from config.json and the run's
settings, next to the logged values.

    python benchmarks/calibration.py            # markdown table on stdout
    python benchmarks/calibration.py --json     # one object per record
    python benchmarks/calibration.py --update-doc   # rewrite the table in docs/calibration.md

Records whose config lives in /work/shared/real_configs are skipped when it is absent.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
REAL_CONFIGS = Path("/work/shared/real_configs")
sys.path.insert(0, str(ROOT / "src"))

from servecheck.api import check  # noqa: E402
from servecheck.errors import InputError  # noqa: E402
from servecheck.hardware.gpus import find_gpu  # noqa: E402
from servecheck.model.config import parse_config  # noqa: E402
from servecheck.plan.config import GIB, ServeOptions, era_for  # noqa: E402
from servecheck.plan.kv_cache import capacity, kv_spec  # noqa: E402
from servecheck.plan.layouts import Layout  # noqa: E402
from servecheck.plan.planner import make_plan  # noqa: E402
from servecheck.versions import resolve_version  # noqa: E402

# The calibration records name GPUs loosely; these are the table rows they mean.
GPU_NAMES = {
    "H100-80GB": "H100 SXM",
    "H100-80GB-HBM3": "H100 SXM",
    "H100": "H100 SXM",
    "H100-PCIe-80GB": "H100 PCIe",
    "A100-80GB": "A100 80GB SXM",
    "A100-40GB": "A100 40GB SXM",
    "RTX-3090": "GeForce RTX 3090",
    "RTX-4090": "GeForce RTX 4090",
    "A10": "A10",
}
# Stub configs that do not describe the weights (calibration/configs/SOURCES.md).
WEIGHTS_NOT_COMPARABLE = {
    "meta-llama--Meta-Llama-3.1-405B-Instruct-FP8": "stub lacks modules_to_not_convert",
}
# Version assumed where a record states none (the llm-d recipe pins vllm-openai:v0.11.0).
DEFAULT_VERSION = "0.11.0"
# Settings a record's source shows but its fields do not hold, each with the evidence.
HINTS: dict[str, tuple[dict, str]] = {
    "qwen3-30b-a3b__a10__tp4__vllm17469": (
        {"sampler": "flashinfer"},
        "run in Docker Compose (log prefix 'qwen3-1 |'): the official image ships FlashInfer, "
        "which vLLM 0.8.5 uses for top-k/top-p by default",
    ),
    "gpt-oss-120b__h100-pcie__tp1__vllm23278-fail": (
        {"moe_backend": "marlin"},
        "the log shows the Marlin FP4 fallback (record notes)",
    ),
    "gpt-oss-120b__h100-80gb__tp1__llmd-16k": (
        {"gpu_memory_utilization": 0.95},
        "the row's own figures only add up at 0.95, not the 0.9 it states: "
        "0.95 x 79.18 - 64.38 - 7.38 - 0.13 = 3.33 GiB, the logged KV memory (0.9 gives -0.63)",
    ),
}
# The logged KV memory of this record is one rank's (a paraphrase), while V0 takes the minimum
# number of blocks over ranks (record notes): vLLM's formula cannot be checked on it.
FORMULA_NOT_COMPARABLE = {"deepseek-r1-distill-qwen-14b__rtx4090__tp2__vllm13061-fail"}
# Records whose outcome or KV figures a memory model cannot reproduce, and why.
KNOWN_MISSES: dict[str, str] = {
    "llama-3.1-405b-fp8__h100-80gb__tp8__vllm6746": (
        "stub config lacks the checkpoint's modules_to_not_convert, so the weights (and so the "
        "KV memory and the outcome) are not predictable from it; gpu_memory_utilization unknown"
    ),
    "gpt-oss-120b__h100__tp1__vllm33155-weights": (
        "out-of-memory after loading in vLLM 0.14.1 only; the reporter runs the same command "
        "on 0.11.2 (a regression, not a budget problem)"
    ),
    "meta-llama-3-8b__a100-40gb__tp1__vllm12330": (
        "vLLM 0.6.6 logged a 9.37 GiB activation peak for an 8192-token profile of an 8B model; "
        "0.6.4.post1 logged 2.07 GiB for 20000 tokens of the same shapes (vllm#10517), so the "
        "peak depends on something the record does not state"
    ),
    "qwen3-235b-a22b-fp8__h100__tp4__vllm21348": (
        "an LMCache KV connector was configured, which takes GPU memory, and the vLLM version "
        "and H100 variant are unknown"
    ),
}


@dataclass
class Result:
    record: str
    model: str
    gpu: str
    tp: int
    version: str
    skipped: str | None = None
    weights_logged: float | None = None
    weights_pred: float | None = None
    weights_err: float | None = None
    avail_logged: float | None = None
    avail_pred: float | None = None
    tokens_logged: int | None = None
    tokens_pred: int | None = None
    tokens_err: float | None = None
    tokens_from_logged_avail: int | None = None
    tokens_formula_err: float | None = None
    capacity_err: float | None = None  # predicted KV tokens vs logged (or implied by logged memory)
    startup_logged: bool | None = None
    status_pred: str | None = None
    startup_pred: bool | None = None
    activation_logged: float | None = None
    activation_pred: float | None = None
    weights_note: str | None = None
    hint: str | None = None
    known_miss: str | None = None


def load_records() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(DATA.glob("*.toml")):
        out.append((path.stem, tomllib.loads(path.read_text(encoding="utf-8"))))
    return out


def config_path(rec: dict) -> Path | None:
    ref = rec["config"]
    if ref.startswith("real_configs:"):
        path = REAL_CONFIGS / ref.split(":", 1)[1] / "config.json"
        return path if path.exists() else None
    return DATA / ref


def record_version(rec: dict) -> str:
    if rec.get("vllm_version"):
        return rec["vllm_version"]
    if rec.get("vllm_version_candidates"):
        return rec["vllm_version_candidates"][0]
    return DEFAULT_VERSION


def predict(name: str, rec: dict) -> Result:
    version = record_version(rec)
    res = Result(
        record=name,
        model=rec["model"],
        gpu=rec["gpu"],
        tp=rec["tensor_parallel_size"],
        version=version,
        weights_logged=rec.get("weights_gib"),
        avail_logged=rec.get("available_kv_gib"),
        tokens_logged=rec.get("kv_cache_tokens"),
        startup_logged=rec.get("startup_ok"),
        activation_logged=rec.get("peak_activation_gib"),
    )
    path = config_path(rec)
    if path is None:
        res.skipped = f"config {rec['config']} not available"
        return res
    try:
        report = check(path, vllm_version=version)
    except InputError as exc:
        return kv_only(res, rec, path, version, str(exc))
    if report.inventory.approximate:
        # an architecture without an exact record: only vLLM's KV formula is comparable
        return kv_only(res, rec, path, version, f"{report.model.architecture} is approximate")
    gpu = find_gpu(GPU_NAMES[rec["gpu"]])
    settings = dict(
        max_model_len=rec.get("max_model_len"),
        kv_cache_dtype=rec.get("kv_cache_dtype") or "auto",
        gpu_memory_utilization=rec.get("gpu_memory_utilization"),
        max_num_batched_tokens=rec.get("max_num_batched_tokens"),
        max_num_seqs=rec.get("max_num_seqs"),
        block_size=rec.get("block_size"),
        enforce_eager=bool(rec.get("enforce_eager", False)),
    )
    if name in HINTS:
        overrides, res.hint = HINTS[name]
        settings.update(overrides)
    res.known_miss = KNOWN_MISSES.get(name)
    options = ServeOptions(**settings)
    layout = Layout(
        tp=rec["tensor_parallel_size"],
        pp=rec.get("pipeline_parallel_size", 1),
        ep=bool(rec.get("enable_expert_parallel", False)),
    )
    total = round(rec["gpu_total_gib"] * GIB) if rec.get("gpu_total_gib") else None
    plan = make_plan(report, gpu, layout.world, 1, options, only=[layout], cuda_total=total)
    lp = plan.layouts[0]
    stage0 = lp.stages[0]
    config_key = rec["config"].split("/")[1] if "/" in rec["config"] else ""
    res.weights_pred = round(stage0.weights.total / GIB, 4)
    if config_key in WEIGHTS_NOT_COMPARABLE:
        res.weights_note = WEIGHTS_NOT_COMPARABLE[config_key]
    elif res.weights_logged:
        res.weights_err = (res.weights_pred - res.weights_logged) / res.weights_logged
    res.avail_pred = round(lp.available_kv / GIB, 2)
    res.activation_pred = round(max(s.overheads.activation for s in lp.stages) / GIB, 2)
    res.tokens_pred = lp.kv_tokens if lp.available_kv > 0 else 0
    if res.tokens_logged and res.tokens_pred is not None:
        res.tokens_err = (res.tokens_pred - res.tokens_logged) / res.tokens_logged
    if res.avail_logged is not None and res.avail_logged > 0:
        era = era_for(report.version)
        layers = lp.kv.stages[0]
        cap = capacity(
            layers,
            round(res.avail_logged * GIB),
            lp.max_model_len,
            lp.kv.block_size,
            era,
            plan.batch.max_num_batched_tokens,
        )
        res.tokens_from_logged_avail = cap.tokens
        if res.tokens_logged:
            res.tokens_formula_err = (cap.tokens - res.tokens_logged) / res.tokens_logged
    if res.tokens_logged:
        res.capacity_err = res.tokens_err
    elif res.tokens_from_logged_avail:
        res.capacity_err = (res.tokens_pred - res.tokens_from_logged_avail) / (
            res.tokens_from_logged_avail
        )
    res.status_pred = lp.status
    res.startup_pred = lp.fits
    return res


def kv_only(res: Result, rec: dict, path: Path, version: str, why: str) -> Result:
    """Architectures servecheck does not model: check vLLM's KV formula on the logged memory."""
    res.weights_note = "architecture not modelled"
    res.skipped = None
    cfg = parse_config(json.loads(path.read_text(encoding="utf-8")))
    layout = Layout(tp=rec["tensor_parallel_size"])
    block = rec.get("block_size") or 16
    spec = kv_spec(cfg, None, layout, "bfloat16", block)
    if res.tokens_logged and res.avail_logged and res.avail_logged > 0:
        era = era_for(resolve_version(version))
        cap = capacity(
            spec.stages[0],
            round(res.avail_logged * GIB),
            rec["max_model_len"],
            block,
            era,
            rec.get("max_num_batched_tokens") or 8192,
        )
        res.tokens_from_logged_avail = cap.tokens
        res.tokens_formula_err = (cap.tokens - res.tokens_logged) / res.tokens_logged
    res.status_pred = f"not modelled ({why.split(' is ')[0]})"
    res.startup_pred = None
    return res


def run() -> list[Result]:
    return [predict(name, rec) for name, rec in load_records()]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.2f}%"


def _num(x: float | int | None, fmt: str = "{:.2f}") -> str:
    if x is None:
        return "–"
    return fmt.format(x)


def markdown(results: list[Result]) -> str:
    lines = [
        "| record | vLLM | weights GiB logged / predicted | error | KV memory GiB logged / "
        "predicted | KV tokens logged (or implied) / predicted | error | started / predicted | "
        "remark |",
        "|---|---|---|---:|---|---|---:|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.record} | {r.version} | skipped: {r.skipped} | | | | | | |")
            continue
        weights = f"{_num(r.weights_logged, '{:.4g}')} / {_num(r.weights_pred, '{:.4g}')}"
        werr = _pct(r.weights_err) if r.weights_note is None else "n/a"
        avail = f"{_num(r.avail_logged)} / {_num(r.avail_pred)}"
        if r.tokens_logged:
            logged = f"{r.tokens_logged:,}"
        elif r.tokens_from_logged_avail:
            logged = f"({r.tokens_from_logged_avail:,})"
        else:
            logged = "–"
        tokens = f"{logged} / {_num(r.tokens_pred, '{:,}')}"
        started = "–" if r.startup_logged is None else ("ok" if r.startup_logged else "failed")
        if r.startup_pred is None:
            predicted = r.status_pred or "–"
        else:
            predicted = "ok" if r.startup_pred else f"fails ({r.status_pred})"
        remark = "; ".join(
            x
            for x in (
                r.weights_note and f"weights: {r.weights_note}",
                r.hint and f"setting from the source: {r.hint}",
                r.known_miss and f"known miss: {r.known_miss}",
            )
            if x
        ).replace("|", "\\|")
        lines.append(
            f"| {r.record} | {r.version} | {weights} | {werr} | {avail} | {tokens} | "
            f"{_pct(r.capacity_err)} | {started} / {predicted} | {remark} |"
        )
    lines += ["", *summary_lines(results)]
    return "\n".join(lines) + "\n"


def summary_lines(results: list[Result]) -> list[str]:
    scored = [r for r in results if not r.skipped and not r.known_miss]
    werrs = [abs(r.weights_err) for r in results if r.weights_err is not None]
    cerrs = [abs(r.capacity_err) for r in scored if r.capacity_err is not None]
    ferrs = [
        abs(r.tokens_formula_err)
        for r in results
        if r.tokens_formula_err is not None and r.record not in FORMULA_NOT_COMPARABLE
    ]
    outcome = [r for r in scored if r.startup_logged is not None and r.startup_pred is not None]
    agree = sum(r.startup_logged == r.startup_pred for r in outcome)
    fails = [r for r in outcome if r.startup_logged is False]
    fails_ok = sum(r.startup_pred is False for r in fails)
    misses = [r.record for r in results if r.known_miss]
    return [
        f"- weights per GPU: {len(werrs)} records, max |error| {_max(werrs)}, "
        f"mean {_mean(werrs)} (target 2%)",
        f"- KV-cache token capacity: {len(cerrs)} records, max |error| {_max(cerrs)}, "
        f"mean {_mean(cerrs)} (target 10%; known misses excluded)",
        f"- vLLM's KV formula alone (tokens from the logged KV memory vs the logged tokens): "
        f"{len(ferrs)} records, max |error| {_max(ferrs)}",
        f"- start-up outcome: {agree} of {len(outcome)} right; failed start-ups predicted as "
        f"failures: {fails_ok} of {len(fails)}",
        f"- known misses (listed, not scored): {len(misses)}",
    ]


def _max(xs: list[float]) -> str:
    return f"{max(xs) * 100:.2f}%" if xs else "–"


def _mean(xs: list[float]) -> str:
    return f"{sum(xs) / len(xs) * 100:.2f}%" if xs else "–"


def main(argv: list[str]) -> int:
    results = run()
    if "--json" in argv:
        print(json.dumps([asdict(r) for r in results], indent=2))
    elif "--update-doc" in argv:
        doc = ROOT / "docs" / "calibration.md"
        text = doc.read_text(encoding="utf-8")
        head = text[: text.index("## Results")]
        doc.write_text(head + "## Results\n\n" + markdown(results), encoding="utf-8")
    else:
        sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
