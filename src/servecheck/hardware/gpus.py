"""The GPU table (``knowledge/gpus.toml``) and forgiving lookup by name.

``load_gpus()`` returns every row as a frozen :class:`Gpu`; ``find_gpu(name)`` turns what a
person or the driver calls a GPU into one row.

How ``find_gpu`` matches, first hit wins:

1. **Exact**: the query equals the row's name, an alias or a driver (NVML) name, ignoring case,
   spaces, dashes, underscores and the words "NVIDIA", "GeForce" and "Tesla". Short forms are
   aliases of one row, which makes them the defaults: "h100" is the H100 SXM, "h200" the H200
   SXM, "a100" the A100 80GB SXM, "v100" the V100 SXM2 32GB, "gh200" the 96 GB GH200,
   "rtx pro 6000" / "pro6000" the RTX PRO 6000 Blackwell Workstation Edition, "rtx 6000" the
   RTX 6000 Ada. Data-center defaults are the flagship SXM part (the larger-memory one where
   two exist), except GH200, whose default is the original and most deployed 96 GB part;
   workstation defaults are the full-power workstation card.
2. **Words**: every word of the query appears in one label of the row ("6000 blackwell",
   "H100-SXM5-80GB"). Letters and digits are separate words ("pro6000" is "pro 6000"). A memory
   size in the query ("40GB", "144G") is not a word but a filter: the row must have that much
   memory. Memory kinds ("HBM3", "GDDR6X") are ignored. Among several rows, the one whose label
   has the fewest extra words wins, then the row listed first in the table.
3. **Longer names**: one of the row's labels is contained in the query and every other word
   of the query is a generic one ("DGX", "HGX", "edition", "gpu"...), so "NVIDIA DGX B200" is a
   B200 but "RTX 4090 D" and "RTX 3080 Ti" match nothing.

Queries of fewer than three letters and digits only match exactly. Nothing else is guessed:
an unmatched name raises :class:`UnknownGpuError` with the closest names (``difflib``).
"cpu" is never a GPU: vLLM's CPU backend is a separate target, not a row of this table.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from servecheck.errors import InputError
from servecheck.knowledge import load_toml

__all__ = [
    "CapabilityInfo",
    "Gpu",
    "UnknownGpuError",
    "capability_info",
    "find_gpu",
    "load_capabilities",
    "load_gpus",
    "parse_capability",
]

_TABLE = "gpus.toml"

# Words that carry no identity: vendor and brand prefixes the driver puts in front of names.
# "Quadro" is deliberately not here: "Quadro RTX 6000" is a Turing card, not the RTX 6000 Ada.
_NOISE = frozenset({"nvidia", "geforce", "tesla"})
# Words a longer name may carry around a known label without changing what it is (tier 3).
_GENERIC = frozenset(
    {"dgx", "hgx", "edition", "generation", "gpu", "graphics", "card", "tensor", "core"}
)
_MEMORY_SIZE = re.compile(r"(?<![a-z0-9])(\d+)\s*(?:gib|gb|g)(?![a-z0-9])")
_MEMORY_KIND = re.compile(r"(?<![a-z0-9])(?:hbm\d?e?|gddr\d+x?|lpddr\d+x?)(?![a-z0-9])")
_WORD = re.compile(r"[a-z]+|\d+")


class UnknownGpuError(InputError, ValueError):
    """No row of the GPU table matches a name; ``suggestions`` holds the closest names."""

    def __init__(self, name: str, suggestions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        if _compact_raw(name) == "cpu":
            message = (
                f"'{name}' names vLLM's CPU backend, not a GPU: the GPU table has no row for it"
            )
        else:
            message = f"unknown GPU '{name}'"
            if self.suggestions:
                message += "; did you mean " + ", ".join(f"'{s}'" for s in self.suggestions) + "?"
        super().__init__(message)


@dataclass(frozen=True)
class CapabilityInfo:
    """Facts that follow from a compute capability alone (a ``[[capability]]`` row)."""

    cc: str
    capability: int
    max_shared_memory_per_block_optin: int
    min_cuda: str
    fp8_tensor_cores: bool
    fp4_tensor_cores: bool
    source: str
    max_cuda: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU product; field meanings are documented at the top of gpus.toml."""

    name: str
    aliases: tuple[str, ...]
    nvml_names: tuple[str, ...]
    arch: str
    cc: str
    capability: int
    memory_gib: float
    memory_bandwidth_gbs: float
    fp8_tensor_cores: bool
    fp4_tensor_cores: bool
    max_shared_memory_per_block_optin: int
    min_cuda: str
    nvlink: bool
    source: str
    max_cuda: str | None = None
    nvml_memory_mib: int | None = None
    memory_type: str | None = None
    form_factor: str | None = None
    tdp: int | None = None
    note: str | None = None

    @property
    def sm(self) -> str:
        """The architecture as compilers and torch name it, e.g. ``sm_120``."""
        return f"sm_{self.capability}"

    @property
    def family(self) -> int:
        """The major version: GPUs of one family share family-specific kernels."""
        # vLLM 0.33 platforms/interface.py is_device_capability_family: capability // 10
        return self.capability // 10

    @property
    def supports_fp8(self) -> bool:
        """vLLM's FP8 gate for CUDA devices."""
        # vLLM 0.33 platforms/cuda.py CudaPlatform.supports_fp8: has_device_capability(89)
        return self.capability >= 89

    @property
    def marketed_memory_bytes(self) -> int:
        """``memory_gib`` in bytes: the marketed capacity, not what the driver reports."""
        return round(self.memory_gib * 2**30)

    @property
    def reported_memory_bytes(self) -> int | None:
        """What nvidia-smi / NVML report as memory.total, where the table knows it."""
        return None if self.nvml_memory_mib is None else self.nvml_memory_mib * 2**20

    @property
    def total_memory_bytes(self) -> int:
        """Best known device memory: the driver-reported total where known, else marketed."""
        reported = self.reported_memory_bytes
        return self.marketed_memory_bytes if reported is None else reported

    @property
    def labels(self) -> tuple[str, ...]:
        """Name, aliases and driver names: everything ``find_gpu`` matches against."""
        return (self.name, *self.aliases, *self.nvml_names)


def parse_capability(cc: str) -> int:
    """``"12.0"`` -> ``120``; also accepts ``"sm_120"``, ``"sm120"`` and ``"120"``."""
    # vLLM 0.33 platforms/interface.py DeviceCapability.to_int: major * 10 + minor, minor < 10
    text = cc.strip().lower()
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    if match:
        major, minor = int(match.group(1)), int(match.group(2))
    else:
        match = re.fullmatch(r"(?:sm_?)?(\d+)", text)
        if not match or len(match.group(1)) < 2:
            raise ValueError(f"not a compute capability: {cc!r}")
        number = int(match.group(1))
        major, minor = divmod(number, 10)
    if minor >= 10:
        raise ValueError(f"compute capability minor version must be below 10: {cc!r}")
    return major * 10 + minor


def _format_capability(capability: int) -> str:
    return f"{capability // 10}.{capability % 10}"


# --------------------------------------------------------------------------- loading


_GPU_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "aliases": list,
    "arch": str,
    "compute_capability": str,
    "memory_gib": (int, float),
    "memory_bandwidth_gbs": (int, float),
    "fp8_tensor_cores": bool,
    "fp4_tensor_cores": bool,
    "max_shared_memory_per_block_optin": int,
    "min_cuda": str,
    "nvlink": bool,
    "source": str,
}
_GPU_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "nvml_names": list,
    "nvml_memory_mib": int,
    "memory_type": str,
    "max_cuda": str,
    "form_factor": str,
    "tdp": int,
    "note": str,
}
_CAP_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "cc": str,
    "max_shared_memory_per_block_optin": int,
    "min_cuda": str,
    "fp8_tensor_cores": bool,
    "fp4_tensor_cores": bool,
    "source": str,
}
_CAP_OPTIONAL: dict[str, type | tuple[type, ...]] = {"max_cuda": str, "note": str}


@cache
def _read_table() -> dict[str, Any]:
    return load_toml(_TABLE)


def _check_row(
    row: dict[str, Any],
    required: dict[str, type | tuple[type, ...]],
    optional: dict[str, type | tuple[type, ...]],
    where: str,
) -> None:
    unknown = set(row) - set(required) - set(optional)
    if unknown:
        raise ValueError(f"{_TABLE}: {where} has unknown keys {sorted(unknown)}")
    for key in required:
        if key not in row:
            raise ValueError(f"{_TABLE}: {where} lacks '{key}'")
    for key, kind in (required | optional).items():
        if key in row and (
            not isinstance(row[key], kind) or (kind is not bool and isinstance(row[key], bool))
        ):
            raise ValueError(f"{_TABLE}: {where}: '{key}' has the wrong type")


@cache
def load_capabilities() -> dict[int, CapabilityInfo]:
    """The ``[[capability]]`` rows, keyed by ``major*10+minor``."""
    result: dict[int, CapabilityInfo] = {}
    for row in _read_table().get("capability", []):
        _check_row(row, _CAP_REQUIRED, _CAP_OPTIONAL, f"capability {row.get('cc')!r}")
        capability = parse_capability(row["cc"])
        if capability in result:
            raise ValueError(f"{_TABLE}: capability {row['cc']} is listed twice")
        result[capability] = CapabilityInfo(capability=capability, **row)
    return result


def capability_info(cc: str | int) -> CapabilityInfo:
    """The per-capability facts for ``"12.0"`` or ``120``; ``KeyError`` if not in the table."""
    capability = cc if isinstance(cc, int) else parse_capability(cc)
    return load_capabilities()[capability]


@cache
def load_gpus() -> tuple[Gpu, ...]:
    """Every row of knowledge/gpus.toml, in table order (the order breaks ties in find_gpu)."""
    capabilities = load_capabilities()
    gpus: list[Gpu] = []
    for row in _read_table().get("gpu", []):
        _check_row(row, _GPU_REQUIRED, _GPU_OPTIONAL, f"gpu {row.get('name')!r}")
        fields = dict(row)
        cc = fields.pop("compute_capability")
        capability = parse_capability(cc)
        if capability not in capabilities:
            raise ValueError(f"{_TABLE}: gpu {row['name']!r}: no [[capability]] row for {cc}")
        gpus.append(
            Gpu(
                cc=_format_capability(capability),
                capability=capability,
                aliases=tuple(dict.fromkeys(fields.pop("aliases"))),
                nvml_names=tuple(fields.pop("nvml_names", ())),
                memory_gib=float(fields.pop("memory_gib")),
                memory_bandwidth_gbs=float(fields.pop("memory_bandwidth_gbs")),
                **fields,
            )
        )
    return tuple(gpus)


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Label:
    row: int  # index into load_gpus()
    raw: str  # compact form with memory words kept: exact matching
    words: tuple[str, ...]  # words without memory size / kind
    memory: int | None  # memory size written in the label, GB


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if w not in _NOISE]


def _compact_raw(text: str) -> str:
    return "".join(_words(text))


def _split_memory(text: str) -> tuple[list[str], int | None]:
    """Words of ``text`` without memory sizes and kinds, and the memory size (GB) if one."""
    lowered = text.casefold()
    sizes = [int(m.group(1)) for m in _MEMORY_SIZE.finditer(lowered)]
    lowered = _MEMORY_KIND.sub(" ", _MEMORY_SIZE.sub(" ", lowered))
    return _words(lowered), (sizes[0] if len(sizes) == 1 else None)


@cache
def _labels() -> tuple[_Label, ...]:
    labels = []
    for index, gpu in enumerate(load_gpus()):
        for label in gpu.labels:
            words, memory = _split_memory(label)
            labels.append(_Label(index, _compact_raw(label), tuple(words), memory))
    return tuple(labels)


def _has_memory(gpu: Gpu, size_gb: int) -> bool:
    sizes = {round(gpu.memory_gib)}
    if gpu.nvml_memory_mib is not None:
        sizes.add(round(gpu.nvml_memory_mib / 1024))
    return size_gb in sizes


def find_gpu(name: str) -> Gpu:
    """The table row for ``name`` (see the module docstring for the rules)."""
    gpus = load_gpus()
    raw = _compact_raw(name)
    if not raw or raw == "cpu":
        raise UnknownGpuError(name, ())

    # 1. exact, memory words included ("NVIDIA GH200 480GB" is a driver name)
    for label in _labels():
        if label.raw == raw:
            return gpus[label.row]

    query_words, query_memory = _split_memory(name)
    query = set(query_words)
    if query and len("".join(query_words)) >= 3:
        # 2. every query word is in a label; the memory size, if given, must fit the row
        best: tuple[int, int] | None = None
        for label in _labels():
            gpu = gpus[label.row]
            if not query <= set(label.words):
                continue
            if query_memory is not None and not _has_memory(gpu, query_memory):
                continue
            if label.memory is not None and query_memory not in (None, label.memory):
                continue
            rank = (len(set(label.words) - query), label.row)
            best = rank if best is None or rank < best else best
        if best is not None:
            return gpus[best[1]]

        # 3. a label is contained in the query, the rest of the query is generic words
        best = None
        for label in _labels():
            gpu = gpus[label.row]
            words = set(label.words)
            if not words or not words <= query or not (query - words) <= _GENERIC:
                continue
            if query_memory is not None and not _has_memory(gpu, query_memory):
                continue
            rank = (-len(words), label.row)
            best = rank if best is None or rank < best else best
        if best is not None:
            return gpus[best[1]]

    raise UnknownGpuError(name, _suggest(raw))


def _suggest(raw: str, limit: int = 5) -> tuple[str, ...]:
    gpus = load_gpus()
    by_form: dict[str, str] = {}
    for label in _labels():
        by_form.setdefault(label.raw, gpus[label.row].name)
    close = difflib.get_close_matches(raw, list(by_form), n=limit * 4, cutoff=0.6)
    names = list(dict.fromkeys(by_form[form] for form in close))
    if not names:  # fall back to rows sharing a model number ("3080" in "rtx 3080 ti")
        numbers = set(re.findall(r"\d{2,}", raw))
        names = [g.name for g in gpus if numbers & set(re.findall(r"\d{2,}", _compact_raw(g.name)))]
    return tuple(names[:limit])
