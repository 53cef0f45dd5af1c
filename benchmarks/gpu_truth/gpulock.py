"""One GPU, several vLLM engines: a file lock around each engine's memory-measuring window.

Runs ON THE GPU MACHINE, inside each case's process (run_cases.py's child, and the child of
`servecheck smoke` through the wrapper ``vllm_python``). Standard library, plus NVML (pynvml,
in the device image; vLLM's vendored copy otherwise) to see device memory settle.

Why: vLLM 0.24 sizes the KV cache from device-wide figures (v1/worker/gpu_worker.py
init_device takes ``MemorySnapshot`` of the whole device and checks free >= total x
gpu_memory_utilization in v1/worker/utils.py request_memory; determine_available_memory counts
any growth of device-wide used memory that is not its own torch memory as its non-torch memory,
and asserts that no other process freed memory meanwhile). So while one engine is between that
snapshot and the end of its start-up, no other process may change device memory: not create a
CUDA context, not load or free weights, not exit.

What the lock covers in each process (``install``):

- the CUDA context the child's start-up probe creates (``probe_env``: torch.cuda.mem_get_info):
  taken and released around it, so the context (about 0.5 GiB) appears outside every window;
- from vLLM's ``Worker.init_device`` (before its snapshot) until the process ends: weights,
  profiling, KV cache, warm-up, CUDA graphs, introspection, generation, and the exit that frees
  it all (``os._exit`` takes the lock first when the process does not hold it).

Imports, argument parsing, the engine configuration (model-class inspection, tokenizer) and the
parent's record building run outside the lock, overlapping another case's window. A process
that takes the lock first waits until device memory has settled (a previous holder's exit may
still be returning its memory), at most SETTLE_MAX_S.

Environment: GPU_TRUTH_LOCK (the lock file; unset: no locking at all), GPU_TRUTH_WINDOW_FILE
(where the child writes the time its window opened, read by the scheduler for timeouts).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from typing import Any

SETTLE_MAX_S = 20.0
SETTLE_STEP_S = 0.25
SETTLE_SAME = 3  # equal readings in a row
SETTLE_TOL = 2 * 2**20  # bytes

_fd: int | None = None
_held = False


def _log(msg: str) -> None:
    print(f"GPU_TRUTH_LOCK {msg}", flush=True)


def _nvml_used() -> Any:
    """A function returning device 0's used bytes via NVML (no CUDA context), or None."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        try:
            from vllm.third_party import pynvml  # type: ignore[no-redef]
        except ImportError:
            return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:
        return None
    return lambda: int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)


def settle(max_s: float = SETTLE_MAX_S) -> float:
    """Wait until device memory stops changing; returns the seconds waited."""
    used = _nvml_used()
    t0 = time.monotonic()
    if used is None:
        return 0.0
    last, same = used(), 0
    while same < SETTLE_SAME and time.monotonic() - t0 < max_s:
        time.sleep(SETTLE_STEP_S)
        now = used()
        same = same + 1 if abs(now - last) <= SETTLE_TOL else 0
        last = now
    return time.monotonic() - t0


def acquire(why: str, timeout: float | None = None) -> bool:
    """Take the lock (blocking, or up to `timeout` seconds), then wait for memory to settle."""
    global _fd, _held
    path = os.environ.get("GPU_TRUTH_LOCK")
    if not path or _held:
        return True
    if _fd is None:
        _fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    if timeout is None:
        fcntl.flock(_fd, fcntl.LOCK_EX)
    else:
        while True:
            try:
                fcntl.flock(_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > timeout:
                    return False
                time.sleep(0.2)
    waited = time.monotonic() - t0
    _held = True
    settled = settle()
    _log(f"acquired for {why} after {waited:.1f} s (+{settled:.1f} s settling)")
    return True


def release(why: str) -> None:
    global _held
    if _fd is not None and _held:
        fcntl.flock(_fd, fcntl.LOCK_UN)
        _held = False
        _log(f"released after {why}")


def _mark_window() -> None:
    path = os.environ.get("GPU_TRUTH_WINDOW_FILE")
    if path:
        with open(path, "w") as f:
            f.write(f"{time.time():.3f}\n")


def install(child: Any) -> None:
    """Patch the smoke child module and vLLM's GPU worker in this process (see the docstring).
    Imports torch and vLLM first, outside the lock."""
    if not os.environ.get("GPU_TRUTH_LOCK"):
        return
    import torch  # noqa: F401  (imports overlap other cases' windows)
    import vllm  # noqa: F401
    from vllm import LLM  # noqa: F401
    from vllm.v1.worker import gpu_worker

    probe = child.probe_env

    def locked_probe() -> dict[str, Any]:
        acquire("the CUDA context")
        try:
            return probe()
        finally:
            release("the CUDA context")

    child.probe_env = locked_probe

    init_device = gpu_worker.Worker.init_device

    def locked_init_device(self: Any) -> Any:
        acquire("the engine (until exit)")
        _mark_window()
        return init_device(self)

    gpu_worker.Worker.init_device = locked_init_device  # type: ignore[method-assign]

    real_exit = os._exit

    def locked_exit(code: int) -> None:
        sys.stdout.flush()
        acquire("exit")  # blocks while another case holds the GPU; the scheduler's deadline ends it
        real_exit(code)

    os._exit = locked_exit  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    """``gpulock.py CHILD_PY SPEC``: run servecheck's smoke child under the lock (the
    ``vllm_python`` wrapper calls this for `servecheck smoke`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("servecheck_smoke_child", argv[1])
    assert spec and spec.loader
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    install(child)
    return int(child.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
