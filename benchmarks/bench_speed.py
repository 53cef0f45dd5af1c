"""The whole `servecheck check` process against a bare process that reads the same headers.

    python benchmarks/bench_speed.py [--runs 7] [--keep DIR]

Builds shape-exact sparse checkpoints (make_sparse.py: real headers, data regions as holes) of
GLM-4.5-Air FP8 (47 shards), GLM-4.5 FP8 (93 shards) and a Kimi-K2-shaped FP8 block checkpoint
(61 layers x 384 experts, DeepseekV3, 61 shards; the published config when ../shared holds it),
then times whole processes, one warm-up and N counted runs each, the two commands of a pair in
turn (A B A B ...) so a drifting machine hits both alike:

  check      `servecheck check DIR --format json` (stdout to /dev/null)
  headers    `python benchmarks/read_headers.py DIR` (open, read, json.loads every header)
  --help     `servecheck --help`
  config     `servecheck check DIR/config.json --format json` (no headers: tensors inferred)

Wall and CPU (user + sys of the finished process, from wait4) are medians; ratios are the
median of the per-pair ratios; peak memory is the largest resident set (ru_maxrss; this
process stays small, builds the checkpoints in a child, as a child's figure starts from its
parent's size, so `python -c pass` shows the floor). CPU time is
the figure to trust on a shared machine: wall time there includes waiting for a core. Goals
(issue 15): check <= 2.0x headers, --help <= 0.15 s, config-only check <= 0.3 s, peak memory
<= 300 MB on the Kimi-K2 shape.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
KIMI_CONFIG = "moonshotai__Kimi-K2-Instruct/config.json"
# Kimi-K2's shape, for when the published config is not at hand (same numbers).
KIMI_SHAPE = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "kimi_k2",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "n_routed_experts": 384,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "n_group": 1,
    "topk_group": 1,
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 163840,
    "max_position_embeddings": 131072,
    "num_nextn_predict_layers": 0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
}


def kimi_config(tmp: Path) -> Path:
    for shared in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (shared / "real_configs" / KIMI_CONFIG).is_file():
            return shared / "real_configs" / KIMI_CONFIG
    path = tmp / "kimi-k2-config" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(KIMI_SHAPE))
    return path


def servecheck_cmd() -> list[str]:
    script = Path(sys.executable).parent / "servecheck"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "servecheck"]


def run_once(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, cpu s, peak MiB) of one whole process, stdout to /dev/null."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def pair(a: list[str], b: list[str], runs: int) -> dict[str, float]:
    """Medians of A and B, A B A B ... after one warm-up each; ratios pair by pair."""
    run_once(a), run_once(b)
    rows = [(run_once(a), run_once(b)) for _ in range(runs)]
    med = statistics.median
    return {
        "a_wall": med(x[0] for x, _ in rows),
        "a_cpu": med(x[1] for x, _ in rows),
        "a_mib": max(x[2] for x, _ in rows),
        "b_wall": med(y[0] for _, y in rows),
        "b_cpu": med(y[1] for _, y in rows),
        "b_mib": max(y[2] for _, y in rows),
        "wall_ratio": med(x[0] / y[0] for x, y in rows),
        "cpu_ratio": med(x[1] / y[1] for x, y in rows),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores ({cpu}), load {load:.1f}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each command")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the checkpoints here")
    args = parser.parse_args()
    # an installed package has its .pyc files (PYTHONDONTWRITEBYTECODE would recompile each run)
    compile_ = [sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "servecheck")]
    subprocess.run(compile_, check=True)
    sc = servecheck_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        cases = {
            "GLM-4.5-Air FP8": (ROOT / "examples" / "glm-4.5-air-derestricted-fp8", 47),
            "GLM-4.5 FP8": (ROOT / "examples" / "glm-4.5-fp8", 93),
            "Kimi-K2 FP8 block": (kimi_config(Path(tmp)).parent, 61),
        }
        print(f"machine: {machine()}; {args.runs} runs each after a warm-up; medians\n")
        print(
            "| checkpoint | tensors | headers MB | check wall | headers wall | ratio wall "
            "| check CPU | headers CPU | ratio CPU | check peak MiB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, (config, shards) in cases.items():
            folder = base / label.split()[0].lower()
            if not (folder / "config.json").is_file():
                build = [sys.executable, str(HERE / "make_sparse.py"), str(config), str(folder)]
                subprocess.run([*build, "--shards", str(shards)], check=True, capture_output=True)
            n, header_mb = header_stats(folder)
            r = pair(
                [*sc, "check", str(folder), "--format", "json"],
                [sys.executable, str(HERE / "read_headers.py"), str(folder)],
                args.runs,
            )
            print(
                f"| {label} ({shards} shards) | {n:,} | {header_mb:.1f} | {r['a_wall']:.3f} s "
                f"| {r['b_wall']:.3f} s | {r['wall_ratio']:.2f}x | {r['a_cpu']:.3f} s "
                f"| {r['b_cpu']:.3f} s | {r['cpu_ratio']:.2f}x | {r['a_mib']:.0f} |"
            )
        print()
        air = cases["GLM-4.5-Air FP8"][0] / "config.json"
        print("| command | wall | CPU | peak MiB | `python -c pass` wall / peak MiB |")
        print("|---|---:|---:|---:|---:|")
        for label, cmd in (
            ("servecheck --help", [*sc, "--help"]),
            ("servecheck check config.json --format json", [*sc, "check", str(air), "-f", "json"]),
        ):
            r = pair(cmd, [sys.executable, "-c", "pass"], args.runs)
            print(
                f"| `{label}` | {r['a_wall']:.3f} s | {r['a_cpu']:.3f} s | {r['a_mib']:.0f} "
                f"| {r['b_wall']:.3f} s / {r['b_mib']:.0f} |"
            )


def header_stats(folder: Path) -> tuple[int, float]:
    """(tensors, MB of header JSON) over the folder's shards. The headers are parsed in a child
    process: this one stays small, as a forked child's peak memory starts from its parent's."""
    size = 0
    shards = list(folder.glob("*.safetensors"))
    for shard in shards:
        with shard.open("rb") as f:
            size += int.from_bytes(f.read(8), "little")
    out = subprocess.run(
        [sys.executable, str(HERE / "read_headers.py"), str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out) - len(shards), size / 1e6  # less each shard's __metadata__


if __name__ == "__main__":
    main()
