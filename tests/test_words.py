"""Words for users: counts agree with their nouns and verbs, in findings and in the report."""

from __future__ import annotations

import re
import string

import pytest

from clirun import invoke
from conftest import FIXTURES
from servecheck.findings.registry import _fill
from servecheck.findings.rules import all_rules
from servecheck.findings.rules.checkpoint import DuplicateTensor
from servecheck.summary import counted

# "1 tensors are", "1 modules", "1 entries match": a count of one before a plural
_ONE_PLURAL = re.compile(r"\b1 (?:\w+ )?(?:\w+ies|\w+[^s]s) (?:are|have|appear|match|name)\b")


def _fields(template: str, n: int) -> dict[str, object]:
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return {name: (n if name == "n" else "x") for name in names}


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_every_message_agrees_with_a_count_of_one(code):
    rule = all_rules()[code]
    for template in (rule.message, rule.fix):
        one = _fill(template, _fields(template, 1))
        assert not _ONE_PLURAL.search(one), one


def test_a_count_chooses_its_words():
    one = DuplicateTensor.make(["a"], n=1, example="a", ver="0.33.0").message
    many = DuplicateTensor.make(["a", "b"], n=2, example="a", ver="0.33.0").message
    assert one.startswith("1 tensor appears in more than one shard")
    assert many.startswith("2 tensors appear in more than one shard")
    assert counted(1, "shard") == "1 shard" and counted(1234, "tensor") == "1,234 tensors"


def test_a_single_file_checkpoint_has_one_shard():
    result = invoke(["check", str(FIXTURES / "llama-FP8_DYNAMIC")])
    assert re.search(r"Weights .* in [\d,]+ tensors, 1 shard$", result.output, re.M), result.output
    assert "1 shards" not in result.output and "1 errors" not in result.output
