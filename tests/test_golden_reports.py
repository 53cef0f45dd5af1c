"""The JSON reports of `check` stay byte-identical: every committed fixture checkpoint, every
broken variant, and sparse shape-exact Kimi-K2 / GLM-4.5-Air FP8 / GLM-4.5 FP8 checkpoints (cut
to a few layers and experts) clean and with the defects the audit reports.

The expected reports were written by tests/fixtures/make_golden.py into
tests/data/golden/reports.json.gz, with the sparse inputs beside them. When a report changes on
purpose, run that script and say in the commit what changed and why.
"""

from __future__ import annotations

import difflib
import gzip
import json
from pathlib import Path

import pytest

from fixtures import broken, sparse
from fixtures.make_golden import GOLDEN, report_json

GOLDEN_DATA = json.loads(gzip.decompress(GOLDEN.read_bytes()))
REPORTS: dict[str, str] = GOLDEN_DATA["reports"]
SPARSE: dict[str, dict] = GOLDEN_DATA["sparse"]


def assert_same(case: str, got: str) -> None:
    want = REPORTS[case]
    if got != want:
        diff = "".join(
            list(
                difflib.unified_diff(
                    want.splitlines(True), got.splitlines(True), "golden", "now", n=2
                )
            )[:80]
        )
        pytest.fail(
            f"{case}: the JSON report changed (if on purpose, run "
            f"tests/fixtures/make_golden.py):\n{diff}"
        )


FIXTURE_CASES = sorted(c.split("/", 1)[1] for c in REPORTS if c.startswith("fixture/"))


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_fixture_reports_unchanged(name: str) -> None:
    assert_same(f"fixture/{name}", report_json(broken.fixture(name)))


def test_broken_reports_unchanged(tmp_path: Path) -> None:
    built = broken.build_all(tmp_path)
    assert {f"broken/{n}" for n in built} == {c for c in REPORTS if c.startswith("broken/")}
    for name, path in built.items():
        assert_same(f"broken/{name}", report_json(path))


@pytest.mark.parametrize("case", sorted(SPARSE))
def test_sparse_reports_unchanged(case: str, tmp_path: Path) -> None:
    folder = sparse.write(SPARSE[case], tmp_path / "ckpt")
    assert_same(case, report_json(folder))


def test_golden_covers_the_audit() -> None:
    """The pinned reports exercise each finding the audit makes on these checkpoints."""
    codes = {f["code"] for r in REPORTS.values() for f in json.loads(r)["findings"]}
    assert {"K001", "K002", "K004", "K005", "K006", "K007", "K008", "K009", "K010"} <= codes
    assert {"K012", "K014"} <= codes
    assert sum(c.startswith("sparse/") for c in REPORTS) == 21
