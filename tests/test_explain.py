"""servecheck explain: the signature catalogue against real and source-derived vLLM logs.

Each log in tests/data/logs starts with `# key: value` header lines: `expect` (the signature
id, or `none`), `catalog` (failure-catalogue entry), `source` (where the error text comes
from), `root` (for `none`: text of the line that must be reported as the root error).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from clirun import invoke
from conftest import ROOT
from servecheck.explain import explain_text, load_signatures, parse_log
from servecheck.findings.rules import all_rules

LOGS = ROOT / "tests" / "data" / "logs"
# Real pastes from public issues (tests/test_explain_corpus.py checks their recognition).
CORPUS = ROOT / "tests" / "data" / "explain_corpus"
CORPUS_PASTES = sorted(CORPUS.glob("*.txt"))
CATALOG = ROOT.parent / "shared" / "research" / "failure-catalog.md"


@cache
def header(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"# (\w+): (.*)$", line)
        if not m:
            if not line.startswith("#"):
                break
            continue
        fields.setdefault(m.group(1), m.group(2).strip())
    return fields


ALL_LOGS = sorted(LOGS.glob("*.log"))
MATCHED_LOGS = [p for p in ALL_LOGS if header(p)["expect"] != "none"]
UNMATCHED_LOGS = [p for p in ALL_LOGS if header(p)["expect"] == "none"]


def test_logs_present_and_cite_sources():
    assert len(ALL_LOGS) >= 100
    for path in ALL_LOGS:
        h = header(path)
        assert "expect" in h and h.get("source"), path.name


@pytest.mark.parametrize("path", MATCHED_LOGS, ids=lambda p: p.name)
def test_log_recognised(path):
    expl = explain_text(path.read_text())
    assert expl.match is not None, f"{path.name}: no signature"
    assert expl.match.signature.id == header(path)["expect"], (
        f"{path.name}: got {expl.match.signature.id} "
        f"(also: {[a.signature.id for a in expl.alternatives]})"
    )


@pytest.mark.parametrize("path", UNMATCHED_LOGS, ids=lambda p: p.name)
def test_unrelated_log_gives_root_line(path):
    expl = explain_text(path.read_text())
    assert expl.match is None
    assert expl.guess is not None
    assert header(path)["root"] in expl.guess.raw


def test_every_catalogue_entry_with_error_text_has_a_log():
    """Every failure-catalogue entry quoting an error has a log recognised as that entry."""
    covered: dict[str, set[str]] = {}
    for path in MATCHED_LOGS:
        cat = header(path).get("catalog")
        if cat:
            covered.setdefault(cat, set()).add(header(path)["expect"])
    signatures = {s.id: s for s in load_signatures()}
    for entry, ids in covered.items():
        for sig_id in ids:
            assert entry in signatures[sig_id].catalog, (entry, sig_id)
    if not CATALOG.is_file():
        pytest.skip("shared failure catalogue not present")
    entries = re.findall(r"^### (F\d+) ", CATALOG.read_text(), re.M)
    # F035 and F050 describe symptoms with no error text (wrong batches, garbage output).
    without_text = {"F035", "F050"}
    missing = [e for e in entries if e not in covered and e not in without_text]
    assert not missing, f"catalogue entries without a recognised log: {missing}"


def _log_texts() -> list[str]:
    texts = []
    for path in ALL_LOGS + CORPUS_PASTES:
        parsed = parse_log(path.read_text())
        texts += [e.text for e in parsed.errors]
        texts += [re.sub(r"\s+", " ", line.text) for line in parsed.lines]
    return texts


def test_no_dead_patterns():
    texts = _log_texts()
    for sig in load_signatures():
        for pattern in sig.patterns:
            assert any(pattern.search(t) for t in texts), f"{sig.id}: {pattern.pattern}"


def test_every_signature_is_best_match_somewhere():
    best = {explain_text(p.read_text()).match.signature.id for p in MATCHED_LOGS}
    for path in CORPUS_PASTES:
        match = explain_text(path.read_text(encoding="utf-8")).match
        if match is not None:
            best.add(match.signature.id)
    unused = [s.id for s in load_signatures() if s.id not in best]
    assert not unused, unused


def test_catalogue_loads_and_findings_exist():
    sigs = load_signatures()
    assert len(sigs) >= 60
    registry = all_rules()
    for sig in sigs:
        assert sig.id and sig.title and sig.cause and sig.fix and sig.vllm_source, sig.id
        for code in sig.finding:
            assert code in registry, f"{sig.id}: unknown finding {code}"
        for ref in sig.refs:
            assert ref.startswith("https://"), (sig.id, ref)


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        (
            "F015-qkv-different-schemes-0.11.log",
            "F015-gate-up-different-schemes-0.33.log",
            "ct-fused-shards-different-schemes",
        ),
        (
            "src-kv-too-small-0.11.log",
            "src-kv-too-small-0.33.log",
            "kv-cache-too-small-for-max-model-len",
        ),
        (
            "F017-ct-no-compatible-scheme.log",
            "F017-ct-no-compatible-scheme-0.33.log",
            "ct-no-compatible-scheme",
        ),
        (
            "src-free-memory-0.11.log",
            "F025-free-memory-startup.log",
            "startup-free-memory-below-utilization",
        ),
    ],
)
def test_wording_variants_across_versions(old, new, expect):
    for name in (old, new):
        expl = explain_text((LOGS / name).read_text())
        assert expl.match is not None and expl.match.signature.id == expect, name
    assert (LOGS / old).read_text() != (LOGS / new).read_text()


def test_fields_extracted():
    expl = explain_text((LOGS / "F029-qwen3-235b-fp8-tp8.log").read_text())
    assert expl.match.fields == {"size": "192", "block": "128"}
    assert "192" in expl.match.detail()
    expl = explain_text((LOGS / "F015-qkv-different-schemes-0.11.log").read_text())
    assert expl.match.fields["layer"] == "model.layers.0.self_attn.qkv_proj"


def test_root_error_skips_wrappers():
    parsed = parse_log((LOGS / "F029-qwen3-235b-fp8-tp8.log").read_text())
    assert parsed.root is not None
    assert parsed.root.exception == "ValueError"
    assert any(e.wrapper and "Engine core initialization failed" in e.text for e in parsed.errors)


def test_worker_wrapper_inner_error_is_root():
    parsed = parse_log((LOGS / "F001-cutlass-moe-sm120.log").read_text())
    assert parsed.root.text.startswith("No compiled cutlass_scaled_mm")


def test_direct_cause_is_root():
    log = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/x/a.py", line 1, in f',
            "    raise KeyError(name)",
            "KeyError: 'model.layers.3.mlp.experts.w13_weight'",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "/x/b.py", line 9, in g',
            "    raise RuntimeError('load failed') from e",
            "RuntimeError: load failed",
        ]
    )
    expl = explain_text(log)
    assert expl.root.exception == "KeyError"
    assert expl.match.signature.id == "keyerror-expert-param"


def test_cli_text_json_and_exit_codes(tmp_path):
    log = LOGS / "F037-heads-52-tp3.log"
    result = invoke(["explain", str(log)])
    assert result.exit_code == 0, result.output
    assert "attention-heads-tp" in result.output and "52 heads, TP 3" in result.output

    result = invoke(["explain", "--format", "json"], input=log.read_text())
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["matched"] is True
    assert data["signature"]["id"] == "attention-heads-tp"
    assert data["fields"] == {"heads": "52", "tp": "3"}
    assert data["signature"]["catalog"] == ["F037"]

    result = invoke(["explain", "-", "-f", "json"], input="all good\n")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["message"] == "no known signature"

    result = invoke(["explain", str(tmp_path / "missing.log")])
    assert result.exit_code == 2
    binary = tmp_path / "core.bin"
    binary.write_bytes(b"\x7fELF\x00\x00\x01")
    assert invoke(["explain", str(binary)]).exit_code == 2


def test_cli_finding_is_shown():
    result = invoke(["explain", str(LOGS / "F015-gemma-gate-up-different-schemes.log")])
    assert result.exit_code == 0
    assert "R001" in result.output and "fused-shards-differ" in result.output
