"""Property tests: hostile copies of the fixture checkpoints give a report or an InputError, each
in bounded time and memory, and the command line never prints a traceback.

Hypothesis draws the fixture, the family of mutation (tests/fuzzcases.py, the same families as
scripts/fuzz.py, which runs 100,000 of them) and the hostile values. The number of examples is
bounded (derandomized, no example database) so the whole file runs in well under a minute.
"""

from __future__ import annotations

import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzcases
from clirun import invoke
from servecheck.api import check
from servecheck.errors import InputError

SECONDS = 2.0
MEGABYTES = 300
EXAMPLES = 40

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, -1, 10**39, 10**100])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(fuzzcases.BAD_REGEX)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
raw_values = st.sampled_from(
    [
        fuzzcases.Raw("NaN"),
        fuzzcases.Raw("Infinity"),
        fuzzcases.Raw("9" * 5000),
        fuzzcases.Raw("[" * 2000 + "]" * 2000),
        fuzzcases.Raw('{"a":' * 80 + "1" + "}" * 80),
    ]
)
hostile = json_values | raw_values

CASE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_bounded(case: fuzzcases.Case) -> str:
    """check() on the case: 'report' or 'input_error', within SECONDS and MEGABYTES of growth
    of this process's peak memory (counted only when the case sets a new peak)."""
    before, peak = _rss_mb(), _maxrss_mb()
    start = time.perf_counter()
    try:
        check(case.model, **case.kwargs)
        outcome = "report"
    except InputError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        outcome = "input_error"
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS, f"{case.label()}: {elapsed:.1f} s"
    grown = _maxrss_mb() - before if _maxrss_mb() > peak else 0
    assert grown < MEGABYTES, f"{case.label()}: +{grown:.0f} MB"
    return outcome


def _case(data: Any, family: str) -> tuple[fuzzcases.Case, Path]:
    fixture = data.draw(st.sampled_from(fuzzcases.fixture_names(family)), label="fixture")
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    folder = Path(tempfile.mkdtemp(prefix="servecheck-fuzz-"))
    values = lambda: data.draw(hostile)  # noqa: E731
    case = fuzzcases.apply(family, fixture, folder / "m", rng, values)
    return case, folder


@pytest.mark.parametrize(
    "family",
    ["config_value", "quant", "index", "header_struct", "header_text", "side_file", "gguf"],
)
@CASE_SETTINGS
@given(data=st.data())
def test_mutated_checkpoint_gives_a_report_or_an_input_error(family, data):
    case, folder = _case(data, family)
    try:
        run_bounded(case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@CASE_SETTINGS
@given(number=st.integers(min_value=0, max_value=10**9))
def test_numbered_cases_of_every_family(number):
    """The exact cases scripts/fuzz.py runs: every family, numbers hypothesis picks."""
    folder = Path(tempfile.mkdtemp(prefix="servecheck-fuzz-"))
    try:
        run_bounded(fuzzcases.make_case(number, folder / "m"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


CLI_FORMS = (
    ["check", "{m}", "--gpu", "H100", "-v"],
    ["check", "{m}", "--format", "markdown", "--gpu", "H200", "--gpus", "2"],
    ["check", "{m}", "--format", "json"],
    ["fix", "{m}", "--write"],
    ["fix", "{m}", "--out", "{out}", "--force"],
)


@pytest.mark.parametrize("form", range(len(CLI_FORMS)))
def test_cli_on_nasty_cases_prints_no_traceback(form, tmp_path):
    """A sample of the cases the in-process run refuses, through the command line."""
    rng = random.Random(form)
    for number in rng.sample(range(100_000), 12):
        folder = tmp_path / f"c{number}"
        case = fuzzcases.make_case(number, folder)
        argv = [a.format(m=case.model, out=tmp_path / f"out{number}") for a in CLI_FORMS[form]]
        result = invoke(argv)
        assert result.exit_code in (0, 1, 2), (case.label(), result.output[-2000:])
        assert "Traceback" not in result.output, case.label()
        assert "failed unexpectedly" not in result.output, (case.label(), result.output[-500:])
