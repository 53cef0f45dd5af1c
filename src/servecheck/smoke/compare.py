"""Prediction against reality, field by field: one Row per thing both sides can say.

    compare_run(report, run, findings, memory_rows) -> Comparison

Rows: the outcome; the root error; per module kind (vLLM's module names mapped onto
servecheck's inventory) the quantization method and scheme, and the linear kernel or MoE
backend; the attention backend; then the memory rows (smoke/memory.py). A row whose observed
side vLLM did not report is kept with `agree=None` ("not compared"), never counted as agreement.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from servecheck.check_result import CheckResult
from servecheck.core import kind_rank
from servecheck.findings.registry import Finding, Severity
from servecheck.smoke.runner import ChildRun

LINEAR_CLASSES = frozenset(
    {
        "QKVParallelLinear",
        "MergedColumnParallelLinear",
        "RowParallelLinear",
        "ColumnParallelLinear",
        "ReplicatedLinear",
        "GateLinear",  # the MoE router from vLLM 0.32 (model_executor/layers/fused_moe/router)
    }
)
MOE_CLASSES = frozenset({"RoutedExperts", "FusedMoE", "SharedFusedMoE"})
ALIASES = {"ValidationError": {"ValueError"}}  # pydantic's ValidationError is a ValueError


@dataclass(frozen=True)
class Row:
    field: str
    predicted: str
    observed: str
    agree: bool | None  # None: not compared (one side has nothing to say)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "predicted": self.predicted,
            "observed": self.observed,
            "agree": self.agree,
            "note": self.note,
        }


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    matched_finding: Finding | None = None  # the error finding that names vLLM's failure

    @property
    def compared(self) -> int:
        return sum(r.agree is not None for r in self.rows)

    @property
    def agreed(self) -> int:
        return sum(r.agree is True for r in self.rows)

    @property
    def disagreements(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.agree is False)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.field == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agreed": self.agreed,
            "compared": self.compared,
            "rows": [r.as_dict() for r in self.rows],
            "matched_finding": self.matched_finding.code if self.matched_finding else None,
        }


# --------------------------------------------------------------------------- the error ----


def raising(findings: Iterable[Finding]) -> list[Finding]:
    """Error findings for which vLLM raises (a class is known): those predict a failed start."""
    return [f for f in findings if f.severity == Severity.ERROR and f.exception]


def core_message(error: dict[str, Any]) -> str:
    msg = str(error.get("message") or "")
    if error.get("class") == "ValidationError" and "Value error, " in msg:
        msg = msg.split("Value error, ", 1)[1]
    return msg.strip().strip("'\"")


def _norm(text: str) -> str:
    text = re.sub(r"^[\w.]*(Error|Exception): ", "", text.strip())
    return re.sub(r"\s+", " ", text.strip("'\" ")).lower()


def message_matches(finding: Finding, error: dict[str, Any]) -> bool:
    """vLLM's message and the finding's quoted text agree (start or 75% similar)."""
    ours = _norm(finding.vllm_message or str(finding.evidence.get("vllm_text", "")))
    theirs = _norm(core_message(error))
    if not ours or not theirs:
        return False
    head = 50
    if theirs[:head] in ours or ours[:head] in theirs:
        return True
    return difflib.SequenceMatcher(None, ours[:160], theirs[:160]).ratio() >= 0.75


def class_matches(finding: Finding, error: dict[str, Any]) -> bool:
    if not finding.exception:
        return False
    ours = finding.exception.split(".")[-1]
    theirs = str(error.get("class") or "")
    return ours == theirs or ours in ALIASES.get(theirs, set())


def observed_error(run: ChildRun) -> dict[str, Any] | None:
    """vLLM's root error: the child's exception, else the last exception line of the log."""
    if run.error:
        return run.error
    line = run.parsed.get("root_error_line")
    if not line:
        return None
    cls, _, msg = line.partition(":")
    return {"class": cls.strip().split(".")[-1], "message": msg.strip()}


def error_text(error: dict[str, Any], width: int = 160) -> str:
    text = f"{error.get('class')}: {core_message(error)}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _finding_text(f: Finding) -> str:
    said = " ".join((f.vllm_message or f.message).split())
    said = said if len(said) <= 120 else said[:117] + "..."
    return f"{f.code} {f.exception}: {said}" if f.exception else f"{f.code}: {said}"


def outcome_rows(findings: Iterable[Finding], run: ChildRun) -> tuple[list[Row], Finding | None]:
    errors = raising(findings)
    predicted = (
        "fails: " + ", ".join(f"{f.code} {f.exception}" for f in errors)
        if errors
        else ("loads and generates")
    )
    observed = {
        "generated": "generated text",
        "loaded": "loaded, no text came back",
        "failed": "failed",
        "timeout": f"still starting after {run.wall_s:.0f} s (stopped)",
        "interrupted": "interrupted",
        "crashed": f"the vLLM process died without a report (exit code {run.exit_code})",
    }[run.outcome]
    if run.outcome in ("generated", "failed"):
        agree: bool | None = bool(errors) == (run.outcome == "failed")
    elif run.outcome == "loaded":
        agree = False if errors else None
    else:
        agree = None
    rows = [Row("outcome", predicted, observed, agree)]
    error = observed_error(run) if run.outcome != "generated" else None
    matched = None
    if error is not None:
        both = [f for f in errors if class_matches(f, error) and message_matches(f, error)]
        either = [f for f in errors if class_matches(f, error) or message_matches(f, error)]
        matched = (both or either or [None])[0]
        shown = matched or (errors[0] if errors else None)
        rows.append(
            Row(
                "root error",
                _finding_text(shown) if shown else "no error predicted",
                error_text(error),
                bool(both),
                "" if both or not either else "class or message differs",
            )
        )
    elif errors:
        rows.append(Row("root error", _finding_text(errors[0]), "none", False))
    return rows, matched


# ---------------------------------------------------------------------- per module kind ----


def vllm_name(name: str) -> str:
    """vLLM 0.24+ nests the routed experts one level down (mlp.experts.routed_experts)."""
    return name.removesuffix(".routed_experts")


def linear_kernel_of(group: dict[str, Any]) -> str | None:
    for attrs in (group.get("scheme_attrs") or {}, group.get("quant_method_attrs") or {}):
        for key in ("fp8_linear", "kernel", "linear_kernel"):
            if key in attrs:
                return str(attrs[key])
    return None


def moe_backend_of(group: dict[str, Any]) -> tuple[str | None, str | None]:
    attrs = group.get("quant_method_attrs") or {}
    backend = next((v for k, v in attrs.items() if k.endswith("_backend")), None)
    return (str(backend).split(".")[-1] if backend else None), attrs.get("experts_cls")


def _moe_pair(kernel: str | None, experts: str | None) -> tuple[str | None, str | None]:
    """(backend, experts class) of a predicted MoE choice; servecheck's CPU model names the
    experts class where vLLM names a backend and the class, so compare the class there."""
    if experts is None and kernel and kernel.endswith("Experts"):
        return None, kernel
    return kernel, experts


def _quant_text(method: str | None, scheme: str | None) -> str:
    return " ".join(x for x in (method, scheme) if x) or "-"


def _join(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or "-"


def module_rows(report: CheckResult, run: ChildRun) -> list[Row]:
    """Quantization method/scheme and kernel per module kind, from the loaded model."""
    groups = run.result.get("modules") or []
    if not groups:
        return []
    ours = {r.module.name: r for r in report.resolution.resolutions}
    kernels = report.kernels.by_name() if report.kernels else {}
    seen: dict[str, dict[str, set[str]]] = {}
    for g in groups:
        cls = g.get("layer_class")
        if cls not in LINEAR_CLASSES | MOE_CLASSES:
            continue
        for name in (vllm_name(n) for n in g.get("examples") or ()):
            res = ours.get(name)
            kind = res.module.kind if res else "not in servecheck's model"
            cell = seen.setdefault(kind, {k: set() for k in ("pq", "oq", "pk", "ok")})
            scheme = g.get("scheme")
            cell["oq"].add(_quant_text(g.get("quant_method"), _strip_ct(scheme)))
            # a scheme where vLLM has one (compressed-tensors); plain methods compare by class
            ours_scheme = res.scheme if res and scheme else None
            cell["pq"].add(_quant_text(res.method, ours_scheme) if res else "-")
            mk = kernels.get(name)
            if cls in MOE_CLASSES:
                backend, experts = moe_backend_of(g)
                pair = _moe_pair(mk.choice.kernel, mk.choice.experts) if mk else (None, None)
                if pair[0] is None:  # servecheck names only the experts class here
                    backend = None
                cell["ok"].add(" / ".join(x for x in (backend, experts) if x) or "-")
                cell["pk"].add(" / ".join(x for x in pair if x) or "-")
            elif linear_kernel_of(g):
                cell["ok"].add(str(linear_kernel_of(g)))
                cell["pk"].add((mk.choice.kernel or "-") if mk else "-")
    rows = []
    for kind in sorted(seen, key=kind_rank):
        cell = seen[kind]
        rows.append(Row(f"quant {kind}", _join(cell["pq"]), _join(cell["oq"]), _same(cell, "q")))
        if cell["ok"]:
            rows.append(
                Row(f"kernel {kind}", _join(cell["pk"]), _join(cell["ok"]), _same(cell, "k"))
            )
    return rows


def _strip_ct(scheme: str | None) -> str | None:
    return scheme.removeprefix("CompressedTensors") if scheme else None


def _same(cell: dict[str, set[str]], what: str) -> bool:
    return cell["p" + what] == cell["o" + what]


def log_kernel_rows(report: CheckResult, run: ChildRun) -> list[Row]:
    """Without the loaded model (a failed start), the kernels vLLM logged before it stopped."""
    if run.result.get("modules"):
        return []
    logged = run.parsed.get("selected") or []
    moe = run.parsed.get("moe_backends") or []
    if not logged and not moe:
        return []
    modules = report.kernels.modules if report.kernels else ()
    ours = sorted({m.choice.kernel for m in modules if m.choice.kernel and m.scheme})
    theirs = [f"{x['kernel']} for {x['for']}" for x in logged] + list(moe)
    return [Row("kernels logged", _join(ours), "; ".join(theirs), None, "vLLM stopped early")]


def attention_row(report: CheckResult, run: ChildRun) -> Row | None:
    logged = list(run.parsed.get("attention_backends") or [])
    if not logged:
        logged = sorted(
            {
                g["attn_backend_name"]
                for g in run.result.get("modules") or ()
                if g.get("attn_backend_name")
            }
        )
    kernels = report.kernels
    if kernels is None:
        return None
    eff = run.result.get("effective") or {}
    fp8 = str(eff.get("kv_cache_dtype") or "auto").startswith("fp8")
    choice = kernels.attention_fp8 if fp8 else kernels.attention
    predicted = choice.backend if choice and choice.backend else "-"
    if not logged:
        return Row("attention backend", predicted, "not reported", None)
    return Row("attention backend", predicted, _join(logged), [predicted] == logged)


def compare_run(
    report: CheckResult,
    run: ChildRun,
    findings: Iterable[Finding] | None = None,
    memory: Iterable[Row] = (),
) -> Comparison:
    """`findings`: the prediction for the run's settings (default: the report's findings)."""
    rows, matched = outcome_rows(report.findings if findings is None else findings, run)
    rows += module_rows(report, run)
    rows += log_kernel_rows(report, run)
    att = attention_row(report, run)
    if att is not None and run.outcome in ("generated", "loaded"):
        rows.append(att)
    rows += list(memory)
    return Comparison(tuple(rows), matched)
