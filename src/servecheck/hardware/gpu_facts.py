"""GPU-table facts that explain a failure log: which GPUs a limit in the message admits.

`servecheck explain` fills a signature's `detail` from the fields its pattern captured; a
signature with `facts = "..."` also gets the fields below, read from knowledge/gpus.toml:

  shared_memory  (fields required, limit: bytes of shared memory per block, as Triton prints)
                 limit_gpus    " (as on RTX 4090, L40S, ...)": table GPUs whose limit is `limit`
                 fitting_gpus  table GPUs whose limit is at least `required`
  arch           (field arch: "sm_121a", "sm_120", ...)
                 arch_gpus     " (compute capability 12.1: GB10 (DGX Spark); CUDA >= 12.9)"
  capability     (field capability: "120", as vLLM's kernels print it)
                 capability_gpus  the same text for that capability

Unknown kinds or unparsable fields give no extra fields (the detail is then left out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from servecheck.hardware.gpus import Gpu, load_capabilities, load_gpus

MAX_NAMES = 4


def _names(gpus: list[Gpu]) -> str:
    names = [gpu.name for gpu in gpus]
    if len(names) <= MAX_NAMES:
        return ", ".join(names)
    return f"{', '.join(names[:MAX_NAMES])} and {len(names) - MAX_NAMES} more"


def shared_memory(required: int, limit: int | None = None) -> dict[str, str]:
    """Which table GPUs allow `required` bytes per block, and which have the `limit` printed."""
    gpus = sorted(load_gpus(), key=lambda g: (g.max_shared_memory_per_block_optin, g.capability))
    fitting = [g for g in gpus if g.max_shared_memory_per_block_optin >= required]
    out = {"fitting_gpus": _names(fitting) if fitting else "none in servecheck's GPU table"}
    same = [g for g in gpus if limit is not None and g.max_shared_memory_per_block_optin == limit]
    out["limit_gpus"] = f" (as on {_names(same)})" if same else ""
    return out


def arch(name: str) -> dict[str, str]:
    """The compute capability an `sm_XY[a|f]` target names, its GPUs and the CUDA it needs."""
    match = re.fullmatch(r"sm_?(\d+)(\d)[af]?", name.strip().lower())
    if not match:
        return {}
    capability = int(match.group(1)) * 10 + int(match.group(2))
    info = load_capabilities().get(capability)
    if info is None:
        return {"arch_gpus": f" (compute capability {match.group(1)}.{match.group(2)})"}
    gpus = [g for g in load_gpus() if g.capability == capability]
    names = f": {_names(gpus)}" if gpus else ""
    return {"arch_gpus": f" (compute capability {info.cc}{names}; CUDA >= {info.min_cuda})"}


def explain_facts(kind: str, fields: Mapping[str, str]) -> dict[str, str]:
    """Extra detail fields of kind `kind` for the fields a log pattern captured."""
    if kind == "shared_memory" and fields.get("required", "").isdigit():
        limit = fields.get("limit", "")
        return shared_memory(int(fields["required"]), int(limit) if limit.isdigit() else None)
    if kind == "arch" and fields.get("arch"):
        return arch(fields["arch"])
    if kind == "capability" and fields.get("capability", "").isdigit():
        found = arch(f"sm_{fields['capability']}")
        return {"capability_gpus": found["arch_gpus"]} if found else {}
    return {}
