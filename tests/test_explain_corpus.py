"""servecheck explain on real failure logs pasted in public issues and forums.

tests/data/explain_corpus/index.toml lists each paste with its source, the text its root error
line must contain (`root`), the family of that error, optionally the curated signature expected
and the number of start-up attempts in the paste. A paste is recognised when `servecheck explain
--format json` explains it with a signature and reports a root error (or the line its signature
matched) containing `root`, the expected family, the expected signature if one is named, and at
least as many failures as attempts. Rows marked `known_miss = "reason"` are expected misses:
their test is an xfail with the reason, never a silent pass. The corpus as a whole must be
recognised in at least 90% of the pastes; rows marked `heldout` (collected after the tables were
written) are also reported apart.

The second half checks the failure catalogue (shared/research/failure-catalog.md): the error
text quoted by each of its entries, pasted alone, is recognised as that entry.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from clirun import invoke
from conftest import ROOT
from servecheck.knowledge import load_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CORPUS = ROOT / "tests" / "data" / "explain_corpus"
# The shared research folder sits beside the checkout (or beside its worktree folder).
CATALOG = next(
    (
        base / "shared" / "research" / "failure-catalog.md"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "research" / "failure-catalog.md").is_file()
    ),
    ROOT.parent / "shared" / "research" / "failure-catalog.md",
)
TARGET_RATE = 0.9
FAMILIES = {
    "memory",
    "kernel",
    "toolchain",
    "quantization-config",
    "moe",
    "attention",
    "parallelism",
    "model-architecture",
    "weight-loading",
    "hub",
    "tokenizer",
    "config-validation",
    "multimodal",
    "lora",
    "speculative-decoding",
    "engine",
}
ROWS: list[dict[str, Any]] = tomllib.loads((CORPUS / "index.toml").read_text())["log"]


def _collapse(text: str) -> str:
    return " ".join(text.split())


@cache
def _curated_families() -> dict[str, str]:
    return {row["id"]: row.get("family", "") for row in load_toml("signatures.toml")["signature"]}


@cache
def explain_json(path: Path) -> dict[str, Any]:
    result = invoke(["explain", str(path), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def family_of(out: dict[str, Any]) -> str | None:
    """The family the explanation reports (or its curated signature's, for older outputs)."""
    if out.get("family"):
        return out["family"]
    sig = out.get("signature") or {}
    return sig.get("family") or _curated_families().get(sig.get("id", "")) or None


def misses(row: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """Why this explanation does not recognise the paste (empty when it does)."""
    why = [] if out.get("matched", True) else ["no signature explains it (unknown error)"]
    want = _collapse(row["root"])
    seen = [(out.get("root_error") or {}).get("text", ""), (out.get("evidence") or {}).get("text")]
    if not any(want in _collapse(text or "") for text in seen):
        why.append(f"root: got {_collapse(seen[0] or '(none)')[:120]!r}")
    family = family_of(out)
    if family != row["family"]:
        why.append(f"family: got {family} (signature {(out.get('signature') or {}).get('id')})")
    if "signature" in row and (out.get("signature") or {}).get("id") != row["signature"]:
        why.append(f"signature: got {(out.get('signature') or {}).get('id')}")
    if "attempts" in row and "failures" in out and len(out["failures"]) < row["attempts"]:
        why.append(f"attempts: got {len(out['failures'])} failures")
    return why


def test_corpus_rows_are_complete():
    files = {p.name for p in CORPUS.glob("*.txt")}
    named = [row["file"] for row in ROWS]
    assert len(named) == len(set(named)), "a file is listed twice"
    assert files == set(named), files ^ set(named)
    assert len(ROWS) >= 100
    for row in ROWS:
        assert row["source"].startswith("https://"), row["file"]
        assert row["family"] in FAMILIES, row["file"]
        text = (CORPUS / row["file"]).read_text(encoding="utf-8")
        assert _collapse(row["root"]) in _collapse(text), row["file"]
        assert len(text) < 8000, f"{row['file']}: quote only the lines needed"
        if "signature" in row:
            assert row["signature"] in _curated_families(), row["file"]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row["file"])
def test_paste_recognised(row):
    why = misses(row, explain_json(CORPUS / row["file"]))
    if why and "known_miss" in row:
        pytest.xfail(f"known miss: {row['known_miss']}")
    assert not why, f"{row['file']}: {'; '.join(why)}"


def test_recognition_rate(capsys):
    missed = {}
    for row in ROWS:
        why = misses(row, explain_json(CORPUS / row["file"]))
        if why:
            missed[row["file"]] = "; ".join(why)
    rate = 1 - len(missed) / len(ROWS)
    with capsys.disabled():
        print(f"\nexplain corpus: {len(ROWS) - len(missed)}/{len(ROWS)} recognised ({rate:.1%})")
        for name, why in sorted(missed.items()):
            print(f"  miss {name}: {why}")
    assert rate >= TARGET_RATE, f"recognition {rate:.1%} < {TARGET_RATE:.0%}"


def test_heldout_rate(capsys):
    """Pastes collected after the table was written: how the tables generalise (reported)."""
    held = [row for row in ROWS if row.get("heldout")]
    ok = [row for row in held if not misses(row, explain_json(CORPUS / row["file"]))]
    with capsys.disabled():
        print(f"\nexplain held-out pastes: {len(ok)}/{len(held)} recognised")
    assert len(held) >= 15
    assert len(ok) / len(held) >= TARGET_RATE


def test_messy_pastes_are_represented():
    tags = {tag for row in ROWS for tag in row.get("messy", ())}
    assert {"prose", "docker", "ray", "attempts", "chinese", "ansi", "crlf"} <= tags


# Families of the toolchain and runtime rows of the curated table (kernels, compilers and
# drivers, memory, the Hub): each cites where its wording and cause come from.
RUNTIME_FAMILIES = {"kernel", "toolchain", "memory", "hub"}


def test_curated_rows_have_families_and_runtime_rows_cite_sources():
    rows = load_toml("signatures.toml")["signature"]
    assert all(row.get("family") in FAMILIES for row in rows), [
        row["id"] for row in rows if row.get("family") not in FAMILIES
    ]
    runtime = [row for row in rows if row["family"] in RUNTIME_FAMILIES]
    assert len(runtime) >= 40
    for row in runtime:
        assert row["refs"] and all(ref.startswith("https://") for ref in row["refs"]), row["id"]


# --------------------------------------------------------------------------------------------
# The failure catalogue's quoted errors
# --------------------------------------------------------------------------------------------


# Entries that describe a symptom, not an error message: F035 quotes an INFO line (the backend
# choice) and F047 a tool name (the hang itself prints nothing); F050 (garbage output) quotes none.
SYMPTOM_ONLY = {"F035", "F047", "F050"}


def _catalog_quotes() -> list[tuple[str, str]]:
    """(entry id, its quoted error text as one paste) for every entry that quotes an error."""
    if not CATALOG.is_file():
        return []
    entries = []
    for section in re.split(r"^### ", CATALOG.read_text(), flags=re.M)[1:]:
        entry = section.split()[0]
        lines = [ln for ln in section.splitlines() if re.match(r"- \*\*(Errors?|Symptom):\*\*", ln)]
        if not lines:  # errors quoted inline in the entry's bullets (F030)
            lines = [ln for ln in section.splitlines() if re.search(r"Error|not divisible", ln)]
        quotes = [q for ln in lines for q in re.findall(r"`([^`]+)`", ln) if len(q) >= 12]
        if quotes and entry not in SYMPTOM_ONLY:
            entries.append((entry, "\n".join(quotes)))
    return entries


CATALOG_QUOTES = _catalog_quotes()


def test_catalog_has_entries_with_errors():
    if not CATALOG.is_file():
        pytest.skip("shared failure catalogue not present")
    entries = re.findall(r"^### (F\d+) ", CATALOG.read_text(), re.M)
    quoted = {entry for entry, _ in CATALOG_QUOTES}
    assert quoted == set(entries) - SYMPTOM_ONLY, set(entries) ^ quoted


@pytest.mark.parametrize(("entry", "paste"), CATALOG_QUOTES, ids=lambda v: str(v)[:40])
def test_catalog_entry_recognised(entry, paste):
    out = json.loads(invoke(["explain", "-", "--format", "json"], input=paste).stdout)
    assert out["matched"], f"{entry}: no signature for {paste[:200]!r}"
    ids = [out["signature"]["id"]]
    catalog = out["signature"].get("catalog") or []
    assert entry in catalog, f"{entry}: explained as {ids} (catalog {catalog})"


# --------------------------------------------------------------------------------------------
# GPU facts in the explanation
# --------------------------------------------------------------------------------------------


def _named(listing: str) -> list[str]:
    return [name for name in re.split(r", | and \d+ more", listing) if name]


def test_shared_memory_detail_names_gpus_from_the_table():
    from servecheck.hardware.gpus import load_gpus

    limits = {gpu.name: gpu.max_shared_memory_per_block_optin for gpu in load_gpus()}
    for name, fits in (
        ("triton-smem-chinese-title-monkeyocr-86.txt", True),
        ("triton-smem-h20e-qwen3coder-461.txt", False),
    ):
        out = explain_json(CORPUS / name)
        assert out["signature"]["id"] == "triton-out-of-shared-memory"
        required, limit = int(out["fields"]["required"]), int(out["fields"]["limit"])
        same, allowed = re.search(
            r"\(as on (.*?)\)\. GPUs that allow it: (.*)\.$", out["detail"]
        ).groups()
        assert all(limits[gpu] == limit for gpu in _named(same))
        if fits:
            assert _named(allowed) and all(limits[gpu] >= required for gpu in _named(allowed))
        else:
            assert max(limits.values()) < required and "none" in allowed


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("ptxas-sm121a-docker-29469.txt", "arch"),  # from the matched ptxas line
        ("no-kernel-image-old-torch-a2-transfuser-313.txt", "arch"),  # from the torch warning
        ("no-kernel-image-journald-prefix-sdwebui-nix-9.txt", "arch"),
    ],
)
def test_detail_names_the_compute_capability(name, field):
    from servecheck.hardware.gpus import capability_info, parse_capability

    out = explain_json(CORPUS / name)
    arch = re.match(r"sm_\d+", out["fields"][field]).group(0)
    info = capability_info(parse_capability(arch))
    assert f"compute capability {info.cc}" in out["detail"]
    assert f"CUDA >= {info.min_cuda}" in out["detail"]
