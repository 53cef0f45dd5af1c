"""Which vLLM kernel runs each layer: shared types and the "first candidate that passes" walk.

The per-family logic lives next door:

* ``linear_kernels.py``: linear layers (vLLM 0.33 ``model_executor/kernels/linear``);
* ``moe_backends.py``: fused-MoE backends (``model_executor/layers/fused_moe/oracle``);
* ``attention.py``: attention backends (``platforms/cuda.py`` get_attn_backend_cls);
* ``cpu_backend.py``: vLLM's CPU platform;
* ``plan_kernels.py``: all of it for one checkpoint (``select_kernels``).

The data (candidate lists per release, each kernel's conditions, sources) is
``knowledge/kernels.toml``; ``conditions.py`` evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servecheck.hardware.conditions import Device, Layer, Verdict, check_row, label
from servecheck.hardware.env import KernelEnv, kernel_table
from servecheck.versions import Release, in_effect

# How each stage reads after an error's type, in the order vLLM reaches them.
STAGE_TEXT = {"init": "", "load": " at load", "run": " at warm-up"}


@dataclass(frozen=True)
class Step:
    """One candidate vLLM tried, and why it was (not) taken."""

    candidate: str
    ok: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class KernelChoice:
    """The kernel (linear) or backend (MoE, attention) vLLM selects, or the error it raises.

    ``kernel`` is vLLM's class name (``CutlassFP8ScaledMMLinearKernel``) or backend name
    (``TRITON``); ``experts`` the MoE experts class; ``steps`` the candidates tried before it,
    each with vLLM's reason. ``error`` holds vLLM's message when no candidate is left.
    """

    family: str  # e.g. "fp8_linear", "fp8_moe", "attention"
    kernel: str | None
    label: str
    steps: tuple[Step, ...] = ()
    experts: str | None = None
    weight_only: bool = False  # activations stay in 16 bits although the scheme quantizes them
    warning: str | None = None  # what vLLM logs for a degraded path
    error: str | None = None  # vLLM's exception text when nothing is left
    error_type: str | None = None  # "ValueError", "NotImplementedError"
    notes: tuple[str, ...] = ()
    source: str = ""
    modelled: bool = True
    # when vLLM raises: "init" (layer construction), "load" (after loading the weights) or "run"
    # (the first forward pass: the warm-up at start-up)
    stage: str = "init"

    @property
    def ok(self) -> bool:
        return self.error is None

    def deciding(self) -> tuple[str, ...]:
        """The reasons of the candidates rejected before the chosen one (vLLM's text)."""
        return tuple(s.reason or s.candidate for s in self.steps if not s.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "kernel": self.kernel,
            "label": self.label,
            "experts": self.experts,
            "weight_only": self.weight_only,
            "warning": self.warning,
            "error": self.error,
            "error_type": self.error_type,
            "rejected": [s.as_dict() for s in self.steps if not s.ok],
            "notes": list(self.notes),
            "source": self.source,
            "modelled": self.modelled,
            "stage": self.stage,
        }


def selection(name: str) -> dict[str, Any]:
    return kernel_table()["selection"][name]


def candidates(name: str, version: Release) -> list[str]:
    """The candidate list of a selection in a release (the latest `from` at or below it)."""
    return list(in_effect(selection(name)["from"], version))


def selection_source(name: str, version: Release) -> str:
    """Where the selection's list lives in that release."""
    source = selection(name).get("source", "")
    return in_effect(source, version, "") if isinstance(source, dict) else source


def prioritize_humming(names: list[str], capability: int | None) -> list[str]:
    """Move Humming directly ahead of Marlin where Humming is preferred (sm_90).

    vLLM 0.33 layers/quantization/utils/humming/priority.py:11-48.
    """
    if capability != 90:
        return names
    lower = [n.lower() for n in names]
    humming = next((i for i, n in enumerate(lower) if "humming" in n), None)
    marlin = next((i for i, n in enumerate(lower) if "marlin" in n), None)
    if humming is None or marlin is None or humming < marlin:
        return names
    out = list(names)
    out.insert(marlin, out.pop(humming))
    return out


def first_passing(
    family: str,
    names: list[str],
    version: Release,
    device: Device,
    env: KernelEnv,
    layer: Layer,
    *,
    error: str,
    error_type: str = "ValueError",
    source: str = "",
    notes: tuple[str, ...] = (),
) -> KernelChoice:
    """Walk ``names`` the way vLLM's choose_* functions do; the first row that passes wins."""
    steps: list[Step] = []
    for name in names:
        verdict: Verdict = check_row(name, version, device, env, layer)
        steps.append(Step(name, verdict.ok, verdict.reason))
        if verdict.ok:
            return chosen(family, name, version, steps, source=source, notes=notes)
    return KernelChoice(
        family=family,
        kernel=None,
        label="no kernel",
        steps=tuple(steps),
        error=error,
        error_type=error_type,
        source=source,
        notes=notes,
    )


def chosen(
    family: str,
    name: str,
    version: Release,
    steps: list[Step] | tuple[Step, ...] = (),
    *,
    experts: str | None = None,
    source: str = "",
    notes: tuple[str, ...] = (),
    display: str | None = None,
) -> KernelChoice:
    """A KernelChoice for the kernel row ``name`` (weight-only flag and warning from the row)."""
    from servecheck.hardware.conditions import row

    r = row(experts or name, version)
    if display is None and experts is not None:
        # MoE: vLLM's own backend name (as in "Using TRITON Fp8 MoE backend"), experts class aside
        display = name + (" (weight-only)" if r.get("weight_only") else "")
    return KernelChoice(
        family=family,
        kernel=name,
        label=display or label(experts or name),
        steps=tuple(steps),
        experts=experts,
        weight_only=bool(r.get("weight_only")),
        warning=r.get("warning"),
        source=source or r.get("source", ""),
        notes=notes,
    )


@dataclass(frozen=True)
class Context:
    """Everything a selection needs besides the layer itself."""

    device: Device
    version: Release  # the mirrored release
    env: KernelEnv
    tp: int = 1
    model_type: str | None = None
    dtype: str = "bfloat16"
    activation: str = "silu"
    extra: dict[str, Any] = field(default_factory=dict)
