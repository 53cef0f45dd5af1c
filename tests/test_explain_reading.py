"""servecheck explain on messy pastes: prefixes, prose, JSON records, several attempts, ranking,
unknown errors. The logs are the committed real ones in tests/data/logs, dressed the way
launchers, log collectors and issue reports dress them; the answer must not change."""

from __future__ import annotations

import json
import re

import pytest

from clirun import invoke
from conftest import ROOT
from servecheck.explain import explain_text, parse_log
from servecheck.explain.engine import ranked

LOGS = ROOT / "tests" / "data" / "logs"
# Real logs whose root is recognised by a curated signature (the header says which).
SAMPLES = [
    "F029-qwen3-235b-fp8-tp8.log",
    "F037-heads-52-tp3.log",
    "F001-cutlass-moe-sm120.log",
    "F015-qkv-different-schemes-0.11.log",
    "F025-free-memory-startup.log",
]


def _expect(name: str) -> str:
    return re.search(r"^# expect: (\S+)", (LOGS / name).read_text(), re.M).group(1)


def _body(name: str) -> list[str]:
    return [ln for ln in (LOGS / name).read_text().splitlines() if not ln.startswith("# ")]


def _dress(lines: list[str], how: str) -> str:
    if how == "docker":  # docker logs -t / kubectl logs --timestamps
        return "\n".join(
            f"2026-01-05T10:00:{i % 60:02d}.123456789Z {ln}" for i, ln in enumerate(lines)
        )
    if how == "compose":
        return "\n".join(f"vllm-1  | {ln}" for ln in lines)
    if how == "ansi-crlf":
        return "\r\n".join(f"\x1b[1;31m{ln}\x1b[0m" for ln in lines) + "\r\n"
    if how == "json":  # a JSON log collector: one record per line
        return "\n".join(json.dumps({"time": "t", "level": "INFO", "message": ln}) for ln in lines)
    if how == "issue":  # an issue report: prose, a fenced block, a question after it
        return "\n".join(
            [
                "### Your current environment",
                "I start the server and it fails with an error, see below.",
                "```text",
                *lines,
                "```",
                "Any idea how to fix this error? It worked on the previous release.",
            ]
        )
    if how == "quoted":  # a reply quoting the log
        return "\n".join(f"> {ln}" for ln in lines)
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["docker", "compose", "ansi-crlf", "json", "issue", "quoted"])
@pytest.mark.parametrize("name", SAMPLES)
def test_dressed_log_gives_the_same_answer(name, how):
    expl = explain_text(_dress(_body(name), how))
    assert expl.match is not None, (name, how)
    assert expl.match.signature.id == _expect(name), (name, how, expl.match.signature.id)
    assert len(expl.failures) == 1


def test_raise_line_under_a_frame_with_prose_after_it():
    """The issue's example: only the source line of the raise, then a prose line."""
    text = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3.12/site-packages/vllm/v1/core/kv_cache_utils.py", line 686,'
            " in check_enough_kv_cache_memory",
            '    raise ValueError("No available memory for the cache blocks. "',
            "I tried lowering max_model_len but it still fails, please help",
        ]
    )
    expl = explain_text(text)
    assert expl.match is not None
    assert expl.family == "memory"
    assert expl.root.kind == "raise"
    assert expl.root.number == 3


def test_ranking_exception_raise_errorlog_prose():
    text = "\n".join(
        [
            "I see an error when starting the server",  # prose
            "ERROR 12-01 10:00:00 [core.py:1] something failed while loading",  # error-log
            "Traceback (most recent call last):",
            '  File "/x/vllm/config/model.py", line 9, in _verify_quantization',
            '    raise ValueError("Unknown quantization method: " + name)',  # raise
            "ValueError: Unknown quantization method: foo. Must be one of ['fp8'].",  # exception
        ]
    )
    parsed = parse_log(text)
    kinds = [c.kind for c in ranked(parsed)]
    assert kinds == ["exception", "raise", "error-log", "prose"]
    assert ranked(parsed)[0].frames[-1] == ("/x/vllm/config/model.py", "_verify_quantization")


def test_ray_and_engine_prefixes_are_stripped():
    text = "\n".join(
        [
            "(RayWorkerWrapper pid=2212, ip=10.0.0.3) ERROR 12-01 10:00:00 [worker.py:1] boom",
            "(EngineCore_DP0 pid=91) INFO 12-01 10:00:00.123 [core.py:12] Waiting",
            "[rank3]: Traceback (most recent call last):",
        ]
    )
    parsed = parse_log(text)
    assert [ln.text for ln in parsed.lines] == [
        "boom",
        "Waiting",
        "Traceback (most recent call last):",
    ]
    assert parsed.lines[0].level == "ERROR" and parsed.lines[0].process == "RayWorkerWrapper"


def test_json_record_with_a_traceback_is_read_line_by_line():
    body = _body("F037-heads-52-tp3.log")
    record = {"level": "ERROR", "message": "Engine failed", "exc_info": "\n".join(body)}
    expl = explain_text(json.dumps(record))
    assert expl.match is not None and expl.match.signature.id == "attention-heads-tp"


def test_two_attempts_in_one_paste_are_two_failures():
    first = _body("F037-heads-52-tp3.log")
    second = _body("F029-qwen3-235b-fp8-tp8.log")
    text = "\n".join(["$ vllm serve ./model -tp 3", *first, "$ vllm serve ./other -tp 8", *second])
    expl = explain_text(text)
    assert [f.match.signature.id for f in expl.failures] == [
        "attention-heads-tp",
        _expect("F029-qwen3-235b-fp8-tp8.log"),
    ]
    assert expl.match.signature.id == expl.failures[-1].match.signature.id
    assert expl.failures[0].lines[1] < expl.failures[1].lines[0]


def test_ranks_of_one_launch_stay_one_failure():
    """Tensor-parallel ranks print their tracebacks from processes of different names."""
    lines = []
    for rank, error in ((0, "torch.OutOfMemoryError: CUDA out of memory."), (1, "RuntimeError: x")):
        prefix = f"(VllmWorker TP{rank} pid={100 + rank})"
        lines += [
            f"{prefix} Traceback (most recent call last):",
            f'{prefix}   File "/x/vllm/worker.py", line 1, in load_model',
            f"{prefix}     self.model = load()",
            f"{prefix} {error}",
        ]
    expl = explain_text("\n".join(lines))
    assert len(expl.failures) == 1


def test_unknown_error_still_gets_an_answer():
    text = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3.12/site-packages/vllm/model_executor/model_loader/'
            'default_loader.py", line 300, in load_weights',
            "    loaded = model.load_weights(weights)",
            "ZeroDivisionError: integer division or modulo by zero",
        ]
    )
    expl = explain_text(text)
    assert expl.match is None
    assert expl.root.exception == "ZeroDivisionError"
    assert expl.frame == ("vllm/model_executor/model_loader/default_loader.py", "load_weights")
    assert expl.family == "weight-loading"
    result = invoke(["explain", "-"], input=text)
    assert result.exit_code == 1
    assert "unknown error" in result.output and "default_loader.py" in result.output
    data = json.loads(invoke(["explain", "-", "-f", "json"], input=text).stdout)
    assert data["unknown"]["exception"] == "ZeroDivisionError"
    assert data["unknown"]["function"] == "load_weights"
    assert data["root_error"]["kind"] == "exception"
    assert data["family"] == "weight-loading"


def test_nearest_known_for_a_reworded_message():
    text = "ValueError: No available memory for cache blocks, try increasing gpu memory utilization"
    expl = explain_text(text)
    assert expl.match is None
    assert expl.family == "memory"
    assert [n.family for n in expl.nearest] == ["memory"] * 3
    assert "no-memory-for-kv-cache" in [n.id for n in expl.nearest]


def test_json_fields_for_the_corpus():
    text = "\n".join(_body("F037-heads-52-tp3.log"))
    data = json.loads(invoke(["explain", "-", "-f", "json"], input=text).stdout)
    assert data["family"] == data["signature"]["family"] and data["family"]
    assert data["signature"]["table"] == "curated"
    assert data["root_error"]["kind"] == "exception"
    assert (
        len(data["failures"]) == 1
        and data["failures"][0]["signature"]["id"] == (data["signature"]["id"])
    )
    assert isinstance(data["others"], list)


def test_huge_one_line_paste_is_answered_with_clipped_text():
    words = ["must", "be", "divisible", "by", "tensor", "parallel", "size", "(3)", "error"]
    text = "ValueError: " + " ".join(words[i % len(words)] for i in range(150_000))
    result = invoke(["explain", "-", "-f", "json"], input=text)
    assert result.exit_code in (0, 1)
    data = json.loads(result.stdout)
    assert data["root_error"]["exception"] == "ValueError"
    assert len(data["root_error"]["text"]) <= 2000
    shown = (data.get("evidence") or data.get("root_guess"))["text"]
    assert len(shown) <= 600
