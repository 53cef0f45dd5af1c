"""Which NVIDIA GPUs this machine has, and whether the installed torch can run on them.

``detect_gpus()`` never raises for a machine without GPUs: it returns a result whose
``reason`` says why nothing was found (no NVML library, no nvidia-smi, no devices...).

Sources, in order:

1. NVML through ``pynvml`` (pip package ``nvidia-ml-py``, the ``nvml`` extra), imported only
   here and only if installed. Driver CUDA version from ``nvmlSystemGetCudaDriverVersion_v2``.
2. ``nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version
   --format=csv,noheader,nounits``, and the header of plain ``nvidia-smi`` for the CUDA
   version. Drivers older than about R510 reject the ``compute_cap`` field; then the query
   runs without it and the capability comes from the GPU table.

torch check (``torch_arch_ok``), only where ``torch`` is importable (found with
``importlib.util.find_spec``; imported only then): does ``torch.cuda.get_arch_list()`` hold
code that can run on the device's compute capability X.Y? The rule is CUDA's binary
compatibility rule (CUDA C++ Programming Guide, "Binary Compatibility" and "Feature Set
Compiler Targets"):

* ``sm_AB`` (compiled code) runs on X.Y when A == X and B <= Y: ``sm_80`` runs on 8.6,
  ``sm_100`` on 10.3, ``sm_120`` on 12.1, but ``sm_90`` not on 10.0 nor ``sm_86`` on 8.0;
* ``compute_AB`` (PTX) is compiled by the driver for any X.Y >= A.B;
* an ``a`` suffix (``sm_90a``) runs on exactly A.B; an ``f`` suffix (``sm_100f``) on every
  X.Y of the same major with Y >= B.

This is stricter than PyTorch's own start-up warning (``torch/cuda/__init__.py``
``_check_cubins``), which compares only major versions and ignores PTX entries.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servecheck.hardware.gpus import Gpu, UnknownGpuError, find_gpu, parse_capability

__all__ = [
    "NVIDIA_SMI_QUERY",
    "DetectedGpu",
    "DetectionResult",
    "SmiGpu",
    "arch_list_supports",
    "detect_gpus",
    "parse_nvidia_smi_cuda_version",
    "parse_nvidia_smi_query",
]

NVIDIA_SMI_FIELDS: tuple[str, ...] = ("name", "memory.total", "compute_cap", "driver_version")
NVIDIA_SMI_QUERY: tuple[str, ...] = (
    "nvidia-smi",
    "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS),
    "--format=csv,noheader,nounits",
)
_SMI_TIMEOUT_S = 30
_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]"}


@dataclass(frozen=True)
class DetectedGpu:
    """One GPU as the driver reports it, and the table row it matched (if any)."""

    index: int
    name: str  # as NVML / nvidia-smi report it, e.g. "NVIDIA H100 80GB HBM3"
    cc: str | None  # "9.0"
    capability: int | None  # 90
    memory_total_bytes: int | None  # None where the driver reports none (GB10: [N/A])
    gpu: Gpu | None  # the matching row of knowledge/gpus.toml
    torch_arch_ok: bool | None = None  # None: torch not importable or not checkable


@dataclass(frozen=True)
class DetectionResult:
    """What ``detect_gpus`` found; ``reason`` says in one sentence why when nothing was."""

    gpus: tuple[DetectedGpu, ...]
    method: str  # "nvml", "nvidia-smi" or "none"
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # highest CUDA the driver supports, e.g. "12.8"
    reason: str | None = None
    notes: tuple[str, ...] = ()  # what was tried and why it did not work
    torch_version: str | None = None
    torch_cuda_version: str | None = None
    torch_arch_list: tuple[str, ...] | None = None
    torch_arch_ok: bool | None = None  # all GPUs runnable by torch; None if not checked

    @property
    def found(self) -> bool:
        return bool(self.gpus)


@dataclass(frozen=True)
class SmiGpu:
    """One parsed line of the nvidia-smi query."""

    name: str
    memory_total_bytes: int | None
    cc: str | None
    driver_version: str | None


@dataclass
class _Probe:
    gpus: list[tuple[str, str | None, int | None]] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver_version: str | None = None


class _Unavailable(Exception):
    """This detection method cannot answer; the message says why, for a person."""


# --------------------------------------------------------------------------- parsing


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text.casefold() in _MISSING else text


def _mib_to_bytes(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)(?:\s*MiB)?", text.strip())
    return int(match.group(1)) * 2**20 if match else None


def parse_nvidia_smi_query(text: str, fields: Sequence[str] = NVIDIA_SMI_FIELDS) -> list[SmiGpu]:
    """Parse ``nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]`` output.

    ``fields`` must list the queried fields in order; ``name`` is required. A header line is
    skipped, ``MiB`` units are accepted, values such as ``[N/A]`` (GB10 memory) become
    ``None``, and memory is returned in bytes.
    """
    if "name" not in fields:
        raise ValueError("the query must include 'name'")
    rows = []
    for number, record in enumerate(csv.reader(text.splitlines(), skipinitialspace=True)):
        if not record or not "".join(record).strip():
            continue
        if number == 0 and record[0].strip() == "name":  # --format=csv without noheader
            continue
        if len(record) != len(fields):
            raise ValueError(f"expected {len(fields)} fields, got {len(record)}: {record}")
        values = dict(zip(fields, (_value(v) for v in record), strict=True))
        if values["name"] is None:
            continue
        rows.append(
            SmiGpu(
                name=values["name"],
                memory_total_bytes=_mib_to_bytes(values.get("memory.total")),
                cc=values.get("compute_cap"),
                driver_version=values.get("driver_version"),
            )
        )
    return rows


def parse_nvidia_smi_cuda_version(text: str) -> str | None:
    """The driver's CUDA version from the header of plain ``nvidia-smi``
    (``| NVIDIA-SMI 570.133.20   Driver Version: 570.133.20   CUDA Version: 12.8 |``)."""
    match = re.search(r"CUDA Version\s*:\s*(\d+\.\d+)", text)
    return match.group(1) if match else None


def _cuda_version_from_int(version: int) -> str:
    # NVML encodes CUDA 12.8 as 12080 (1000 * major + 10 * minor)
    return f"{version // 1000}.{(version % 1000) // 10}"


# --------------------------------------------------------------------------- torch rule


def arch_list_supports(arch_list: Iterable[str], capability: int) -> bool:
    """Whether one entry of a torch arch list can run on ``capability`` (see module doc)."""
    major = capability // 10
    for entry in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)([af]?)", entry.strip().lower())
        if not match:
            continue
        kind, target, suffix = match.group(1), int(match.group(2)), match.group(3)
        if suffix == "a":
            ok = target == capability
        elif suffix == "f" or kind == "sm":
            ok = target // 10 == major and target <= capability
        else:  # PTX: JIT-compiled by the driver for this or any later capability
            ok = target <= capability
        if ok:
            return True
    return False


# --------------------------------------------------------------------------- probes


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _probe_nvml() -> _Probe:
    if importlib.util.find_spec("pynvml") is None:
        raise _Unavailable("NVML: the Python bindings are not installed (pip install nvidia-ml-py)")
    pynvml = importlib.import_module("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        if isinstance(error, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
            raise _Unavailable(
                "NVML: libnvidia-ml.so.1 not found (no NVIDIA driver installed)"
            ) from error
        if isinstance(error, getattr(pynvml, "NVMLError_DriverNotLoaded", ())):
            raise _Unavailable("NVML: the NVIDIA driver is not loaded") from error
        raise _Unavailable(f"NVML: initialisation failed: {error}") from error
    try:
        probe = _Probe()
        with contextlib.suppress(pynvml.NVMLError):
            probe.driver_version = _decode(pynvml.nvmlSystemGetDriverVersion())
        for getter in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
            try:
                probe.cuda_driver_version = _cuda_version_from_int(getattr(pynvml, getter)())
                break
            except (AttributeError, pynvml.NVMLError):
                continue
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = _decode(pynvml.nvmlDeviceGetName(handle))
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                cc: str | None = f"{major}.{minor}"
            except pynvml.NVMLError:
                cc = None
            try:
                memory: int | None = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            except pynvml.NVMLError:  # GB10 and other unified-memory parts: NotSupported
                memory = None
            probe.gpus.append((name, cc, memory))
        return probe
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=False
    )


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _probe_nvidia_smi() -> _Probe:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        raise _Unavailable("nvidia-smi: not found on PATH (no NVIDIA driver installed)")
    fields: tuple[str, ...] = NVIDIA_SMI_FIELDS
    try:
        done = _run([executable, *NVIDIA_SMI_QUERY[1:]])
        if done.returncode != 0 and "compute_cap" in done.stdout + done.stderr:
            fields = tuple(f for f in NVIDIA_SMI_FIELDS if f != "compute_cap")
            query = ["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]
            done = _run([executable, *query])
    except (OSError, subprocess.SubprocessError) as error:
        raise _Unavailable(f"nvidia-smi: could not run: {error}") from error
    if done.returncode != 0:
        message = _first_line(done.stdout) or _first_line(done.stderr) or "no output"
        raise _Unavailable(f"nvidia-smi: failed (exit {done.returncode}): {message}")
    try:
        rows = parse_nvidia_smi_query(done.stdout, fields)
    except ValueError as error:
        raise _Unavailable(f"nvidia-smi: unexpected output: {error}") from error
    probe = _Probe(gpus=[(row.name, row.cc, row.memory_total_bytes) for row in rows])
    probe.driver_version = next((r.driver_version for r in rows if r.driver_version), None)
    try:
        header = _run([executable])
        probe.cuda_driver_version = parse_nvidia_smi_cuda_version(header.stdout)
    except (OSError, subprocess.SubprocessError):
        pass
    return probe


def _torch_facts() -> tuple[str | None, str | None, tuple[str, ...] | None, list[str]]:
    """torch version, its CUDA version and arch list, plus notes; Nones if no torch."""
    if importlib.util.find_spec("torch") is None:
        return None, None, None, []
    notes: list[str] = []
    try:
        torch = importlib.import_module("torch")
    except Exception as error:  # a broken install must not break detection
        return None, None, None, [f"torch: import failed: {error}"]
    version = str(getattr(torch, "__version__", "")) or None
    cuda = getattr(torch.version, "cuda", None)
    if cuda is None:
        kind = "ROCm" if getattr(torch.version, "hip", None) else "CPU-only"
        return version, None, (), [f"torch {version} is a {kind} build: no CUDA kernels"]
    try:
        arch_list = tuple(torch.cuda.get_arch_list())
    except Exception as error:
        return version, str(cuda), None, [f"torch: get_arch_list failed: {error}"]
    if not arch_list:  # get_arch_list() is empty when torch.cuda.is_available() is False
        notes.append(
            f"torch {version} (CUDA {cuda}) cannot use the GPUs (torch.cuda.is_available() "
            "is False); the driver may be older than torch's CUDA"
        )
        return version, str(cuda), None, notes
    return version, str(cuda), arch_list, notes


# --------------------------------------------------------------------------- entry point


def _match(name: str, capability: int | None) -> tuple[Gpu | None, str | None]:
    try:
        gpu = find_gpu(name)
    except UnknownGpuError:
        return None, f"'{name}' is not in the GPU table"
    if capability is not None and gpu.capability != capability:
        return None, (
            f"'{name}' reports compute capability {capability // 10}.{capability % 10} but the "
            f"table's '{gpu.name}' has {gpu.cc}; not matched"
        )
    return gpu, None


def detect_gpus(
    *, use_nvml: bool = True, use_nvidia_smi: bool = True, check_torch: bool = True
) -> DetectionResult:
    """Find the local NVIDIA GPUs (NVML, else nvidia-smi) and check torch against them."""
    notes: list[str] = []
    probe: _Probe | None = None
    method = "none"
    for enabled, name, run in (
        (use_nvml, "nvml", _probe_nvml),
        (use_nvidia_smi, "nvidia-smi", _probe_nvidia_smi),
    ):
        if not enabled:
            continue
        try:
            probe = run()
        except _Unavailable as why:
            notes.append(str(why))
            continue
        method = name
        if probe.gpus:
            break
        notes.append(f"{name}: the driver reports no GPU")
    if probe is None or not probe.gpus:
        reason = "no NVIDIA GPU found: " + ("; ".join(notes) if notes else "detection disabled")
        return DetectionResult(
            gpus=(),
            method=method if probe is not None else "none",
            driver_version=probe.driver_version if probe else None,
            cuda_driver_version=probe.cuda_driver_version if probe else None,
            reason=reason,
            notes=tuple(notes),
        )

    torch_version = torch_cuda = None
    arch_list: tuple[str, ...] | None = None
    if check_torch:
        torch_version, torch_cuda, arch_list, torch_notes = _torch_facts()
        notes.extend(torch_notes)

    detected = []
    for index, (name, cc, memory) in enumerate(probe.gpus):
        capability = None
        if cc is not None:
            try:
                capability = parse_capability(cc)
            except ValueError:
                notes.append(f"GPU {index}: unreadable compute capability {cc!r}")
        gpu, why = _match(name, capability)
        if why:
            notes.append(f"GPU {index}: {why}")
        if capability is None and gpu is not None:  # old drivers: no compute_cap field
            capability = gpu.capability
            notes.append(f"GPU {index}: compute capability taken from the table ({gpu.cc})")
        ok = None
        if arch_list is not None and capability is not None:
            ok = arch_list_supports(arch_list, capability)
        detected.append(
            DetectedGpu(
                index=index,
                name=name,
                cc=None if capability is None else f"{capability // 10}.{capability % 10}",
                capability=capability,
                memory_total_bytes=memory,
                gpu=gpu,
                torch_arch_ok=ok,
            )
        )
    oks = [d.torch_arch_ok for d in detected]
    return DetectionResult(
        gpus=tuple(detected),
        method=method,
        driver_version=probe.driver_version,
        cuda_driver_version=probe.cuda_driver_version,
        notes=tuple(notes),
        torch_version=torch_version,
        torch_cuda_version=torch_cuda,
        torch_arch_list=arch_list,
        torch_arch_ok=None if None in oks else all(oks),
    )
