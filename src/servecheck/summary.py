"""Shared views of a CheckResult (modules grouped by kind, sizes, counted words) for the
stages that describe reports (compare) and the renderers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from servecheck.check_result import CheckResult
from servecheck.core import kind_rank
from servecheck.model.config import ModelConfig
from servecheck.quant.compressed_tensors import CTConfig


@dataclass(frozen=True)
class KindRow:
    kind: str
    count: int
    schemes: dict[str, int]  # scheme (or "unquantized"/"error") -> modules
    min_capability: int | None
    ignored: int
    methods: dict[str, int]
    nbytes: int
    mtp: int


def kind_rows(report: CheckResult) -> list[KindRow]:
    groups: dict[str, list] = {}
    for r in report.resolution.resolutions:
        groups.setdefault(r.module.kind, []).append(r)
    rows = []
    for kind in sorted(groups, key=kind_rank):
        rs = groups[kind]
        schemes = Counter("error" if r.error else (r.scheme or "unquantized") for r in rs)
        caps = [r.min_capability for r in rs if r.min_capability is not None]
        rows.append(
            KindRow(
                kind=kind,
                count=len(rs),
                schemes=dict(schemes),
                min_capability=max(caps) if caps else None,
                ignored=sum(r.ignored for r in rs),
                methods=dict(Counter(r.method for r in rs)),
                nbytes=sum(report.module_bytes.get(r.module.name, 0) for r in rs),
                mtp=sum(r.module.mtp for r in rs),
            )
        )
    return rows


def attention_text(cfg: ModelConfig) -> str:
    """'96 heads / 8 KV', or for MLA the latent rank the KV cache holds instead of KV heads."""
    if cfg.is_mla:
        q = f", q rank {cfg.q_lora_rank}" if cfg.q_lora_rank else ""
        return (
            f"{cfg.num_heads} heads, MLA (latent rank {cfg.kv_lora_rank} + rope "
            f"{cfg.qk_rope_head_dim}{q})"
        )
    return f"{cfg.num_heads} heads / {cfg.num_kv_heads} KV"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"


def counted(n: int, word: str, plural: str | None = None) -> str:
    """'1 error', '2 errors'; '1 entry', '3 entries' with the plural given; '1,234 tensors'."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def entries_text(n: int) -> str:
    """'1 entry', '3 entries'."""
    return counted(n, "entry", "entries")


def schemes_text(schemes: dict[str, int]) -> str:
    if len(schemes) == 1:
        return next(iter(schemes))
    return ", ".join(f"{k} ×{v}" for k, v in sorted(schemes.items(), key=lambda kv: -kv[1]))


def ct_groups(ct: CTConfig) -> list[tuple[str, str]]:
    """(group name, "W <weights>, A <activations> → <targets>") per config group."""
    groups: dict[str, list[str]] = {}
    for target, ts in ct.targets.items():
        groups.setdefault(ts.group, []).append(target)
    out = []
    for name, targets in groups.items():
        ts = ct.targets[targets[0]]
        acts = ts.input_activations.describe() if ts.input_activations else "none"
        out.append((name, f"W {ts.weights.describe()}, A {acts} → {', '.join(targets)}"))
    return out


def quant_text(report: CheckResult) -> str:
    """One line on the quantization: method, groups, ignore list size."""
    q = report.quant
    if q.method is None:
        return "none (unquantized)"
    parts = [q.method]
    if q.ct is not None:
        parts += [f"{name}: {text}" for name, text in ct_groups(q.ct)]
        parts.append(f"ignore: {entries_text(len(q.ct.ignore))}")
    elif q.fp8 is not None:
        block = q.fp8.weight_block_size
        parts.append(f"block {block[0]}x{block[1]}" if block else "per-tensor")
        parts.append(f"activations {q.fp8.activation_scheme}")
        parts.append(f"ignored_layers: {len(q.fp8.ignored_layers)}")
    return " · ".join(parts)
