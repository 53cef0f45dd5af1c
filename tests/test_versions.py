"""vLLM releases as ranges: every known release resolves every version-keyed row."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from servecheck.api import check
from servecheck.hardware.conditions import row
from servecheck.hardware.env import kernel_table, resolve_env
from servecheck.knowledge import load_toml
from servecheck.plan.config import table as memory_table
from servecheck.versions import (
    Release,
    checked_through,
    feature,
    feature_names,
    in_effect,
    known_releases,
    resolve_version,
)

KNOWN = known_releases()


def test_releases_cover_0_10_to_0_33_in_numeric_order():
    names = [str(r) for r in KNOWN]
    assert names[0] == "0.10.0" and "0.33.0" in names
    assert {"0.10.1.1", "0.11.0", "0.24.0", "0.33.0"} <= set(names)
    assert list(KNOWN) == sorted(KNOWN) and len(set(KNOWN)) == len(KNOWN)


def test_release_compares_as_numbers_not_text():
    assert Release.parse("0.9.2") < Release.parse("0.10.0")  # "0.9.2" > "0.10.0" as text
    assert Release.parse("0.10.1") < Release.parse("0.10.1.1") < Release.parse("0.10.2")
    assert Release.parse("0.33") == Release.parse("0.33.0") == Release.parse("v0.33.0.0")
    assert Release.parse("0.11.1rc4") == Release.parse("0.11.1")
    assert Release.parse("0.10.2+cu128") == Release.parse("0.10.2")
    assert str(Release.parse("0.10.1.1")) == "0.10.1.1"


def test_in_effect_takes_the_latest_row_at_or_below():
    rows = {"0.10.0": "a", "0.14.0": "b", "0.22.0": "c"}
    picks = {v: in_effect(rows, Release.parse(v)) for v in ("0.10.0", "0.13.0", "0.14.0", "0.40")}
    assert picks == {"0.10.0": "a", "0.13.0": "a", "0.14.0": "b", "0.40": "c"}
    with pytest.raises(LookupError):
        in_effect({"0.14.0": "b"}, Release.parse("0.13.0"))


@pytest.mark.parametrize("release", KNOWN, ids=str)
def test_every_known_release_resolves_every_row(release):
    version = resolve_version(str(release))
    assert version.exact and version.release == release
    codes = [f.code for f in version.findings()]
    assert codes == ([] if release <= checked_through() else ["V003"])
    for name in feature_names():
        feature(release, name)
    env = resolve_env(release)
    assert env.cuda
    for name in kernel_table()["kernel"]:
        row(name, release)
    for rows in memory_table()["kv_cache_check"].values():
        in_effect(rows["from"], release)


def test_every_feature_starts_at_the_first_release_and_cites_its_boundaries():
    features = load_toml("vllm_versions.toml")["features"]
    first = KNOWN[0]
    for name, entry in features.items():
        starts = sorted(Release.parse(k) for k in entry["from"])
        assert starts[0] == first, f"{name} does not start at {first}"
        assert entry.get("doc") and entry.get("source"), name
        for boundary in entry.get("changed", {}):
            assert boundary in entry["from"], f"{name}: evidence for a boundary it lacks"


def test_selections_start_at_a_known_release():
    for name, sel in kernel_table()["selection"].items():
        starts = [Release.parse(k) for k in sel["from"]]
        assert all(s in KNOWN for s in starts), name


def test_every_published_release_is_known_and_the_default_is_the_newest_checked():
    assert KNOWN[-1] >= checked_through() and checked_through() in KNOWN
    assert resolve_version(None).release == checked_through()


def test_a_known_release_after_the_checked_one_warns_it_inherits():
    later = [r for r in KNOWN if r > checked_through()]
    if not later:  # every known release checked: nothing to warn about
        assert resolve_version(str(KNOWN[-1])).findings() == []
        return
    report = check(FIXTURES / "llama-FP8_DYNAMIC", vllm_version=str(later[-1]))
    found = [f for f in report.findings if f.code == "V003"]
    assert found and found[0].severity.value == "warning" and report.verdict == "warn"
    assert str(checked_through()) in found[0].message and report.version.exact


def test_new_release_inherits_the_newest_values():
    newest = KNOWN[-1]
    later = Release.parse("9.0.0")
    for name in feature_names():
        assert feature(later, name) == feature(newest, name)


def test_unlisted_release_mirrors_the_latest_at_or_below():
    version = resolve_version("0.12.7")
    assert version.effective == "0.12.0" and version.standing == "unlisted"
    assert version.note() and not version.findings()


@pytest.mark.parametrize(
    ("asked", "code", "mirrored"), [("0.9.2", "V001", "0.10.0"), ("0.99.0", "V002", None)]
)
def test_release_outside_the_range_warns(asked, code, mirrored):
    version = resolve_version(asked)
    assert version.effective == (mirrored or str(KNOWN[-1]))
    report = check(FIXTURES / "llama-FP8_DYNAMIC", vllm_version=asked)
    found = [f for f in report.findings if f.code == code]
    assert found and found[0].severity.value == "warning"
    assert asked in found[0].message and report.verdict != "ok"


def test_default_is_the_newest_known_release_or_the_installed_one():
    assert resolve_version(None).effective == str(checked_through())
    installed = resolve_version(None, installed="0.24.0")
    assert installed.effective == "0.24.0" and installed.source == "installed"


def test_every_known_release_is_in_the_tables_extracted_from_its_sources():
    """What V003 promises for a known release: its own registry, arguments, maximum-length
    rules and quantization methods (scripts/extract_*.py), not inherited ones."""
    known = [str(r) for r in KNOWN]
    for name in ("vllm_registry", "quant_methods", "online_quant"):
        assert load_toml(f"{name}.toml")["releases"] == known, f"re-run scripts for {name}"
    spans = load_toml("vllm_max_len.toml")["rule"]
    assert spans[0]["from"] == known[0] and spans[-1]["to"] == known[-1]
