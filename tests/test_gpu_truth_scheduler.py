"""The GPU-truth scheduler (benchmarks/gpu_truth/run_cases.py) and its GPU lock (gpulock.py),
run here without a GPU: the real scheduler starts the real case children, which run
servecheck's smoke child under the lock; only the engine is a stand-in (a `vllm` package whose
LLM class calls its Worker's init_device, holds the "GPU" a while and writes down when).

What must hold: no two engines are ever between init_device and their process's exit at the
same time (vLLM 0.24 measures device-wide memory there), while the cases' start-up work
(imports, configuration) overlaps, so the run takes less than the cases one after another.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_CASES = ROOT / "benchmarks" / "gpu_truth" / "run_cases.py"

PRE_S = 1.0  # stand-in start-up work before the engine asks for the GPU
HOLD_S = 0.6  # stand-in engine's time on the GPU

FAKE = {
    "torch/__init__.py": """
        __version__ = "0.0-stand-in"
        from . import cuda, version
    """,
    "torch/version.py": "cuda = None\n",
    "torch/cuda.py": """
        def is_available():
            return False
    """,
    "vllm/__init__.py": """
        import os, time
        __version__ = "0.24.0"
        time.sleep(float(os.environ["FAKE_PRE_S"]))  # imports take a while

        class SamplingParams:
            def __init__(self, **kw):
                self.kw = kw

        class LLM:
            def __init__(self, model, **kw):
                from vllm.v1.worker.gpu_worker import Worker
                if kw.get("max_model_len") == 4096:  # one case fails before the GPU
                    raise ValueError("stand-in configuration error")
                Worker().init_device()
                t0 = time.time()
                time.sleep(float(os.environ["FAKE_HOLD_S"]))
                with open(os.environ["FAKE_TRACE"], "a") as f:
                    f.write(f"{os.getpid()} {t0} {time.time()}\\n")

            def generate(self, prompts, params, use_tqdm=False):
                out = type("Out", (), {"token_ids": [1, 2], "text": "ab"})
                return [type("Req", (), {"outputs": [out]})]
    """,
    "vllm/platforms.py": """
        class _P:
            device_type = "cuda"
        current_platform = _P()
    """,
    "vllm/v1/__init__.py": "",
    "vllm/v1/worker/__init__.py": "",
    "vllm/v1/worker/gpu_worker.py": """
        class Worker:
            def init_device(self):
                pass
    """,
}


def _fake_packages(where: Path) -> None:
    for rel, text in FAKE.items():
        path = where / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def test_engines_never_share_the_gpu_window(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _fake_packages(site)
    trace = tmp_path / "trace.txt"
    cases = ["llama-bf16", "llama-W4A16", "llama-FP8", "llama-W8A8", "llama-bf16-len-above-model"]
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": f"{site}{os.pathsep}{ROOT / 'src'}",
        "FAKE_PRE_S": str(PRE_S),
        "FAKE_HOLD_S": str(HOLD_S),
        "FAKE_TRACE": str(trace),
        "OUT": str(tmp_path / "out"),
        "PATH": os.environ.get("PATH", ""),
    }
    t0 = time.time()
    done = subprocess.run(
        [sys.executable, str(RUN_CASES), "--only", ",".join(cases), "--jobs", "4"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.time() - t0
    assert done.returncode == 0, done.stdout + done.stderr

    windows = sorted(
        (float(a), float(b)) for _, a, b in (ln.split() for ln in trace.read_text().splitlines())
    )
    assert len(windows) == 4  # the fifth case fails before it asks for the GPU
    for (_, end1), (start2, _) in itertools.pairwise(windows):
        assert start2 >= end1, f"two engines held the GPU at once: {windows}"

    records = tmp_path / "home" / "gpu_truth" / "records"
    outcome = {p.stem: json.loads(p.read_text())["outcome"] for p in records.glob("*.json")}
    assert outcome == {**{c: "loaded" for c in cases[:4]}, cases[4]: "failed"}
    logs = (tmp_path / "home" / "gpu_truth" / "logs" / "llama-bf16.log").read_text()
    assert "GPU_TRUTH_LOCK acquired for the engine (until exit)" in logs
    assert "GPU_TRUTH_LOCK acquired for exit" not in logs  # it never let go of the GPU
    # start-up overlapped: one after another would take 5 x PRE_S + 4 x HOLD_S at least
    assert wall < 5 * PRE_S + 4 * HOLD_S + 1.5 * PRE_S, done.stdout
