"""The command line as scripts and terminals meet it: pipes at 80 columns, a real 80-column
terminal, exit codes per the README, --version, -q, NO_COLOR, `python -m servecheck`.

Commands run as real processes (`python -m servecheck`): through a pipe, and in a
pseudo-terminal of 80 columns where the terminal case matters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from clirun import invoke
from conftest import EXAMPLES, FIXTURES, ROOT
from fixtures import broken
from servecheck import __version__
from servecheck.cli import split_vllm_args
from servecheck.hardware.gpus import load_gpus

GLM_AIR = str(EXAMPLES / "glm-4.5-air-derestricted-fp8")
GLM = str(EXAMPLES / "glm-4.5-fp8")
LLAMA_FP8 = str(FIXTURES / "llama-FP8_DYNAMIC")
LOG = str(ROOT / "tests" / "data" / "logs" / "F001-cutlass-moe-sm120.log")
PRO6000 = "RTX PRO 6000 Blackwell Workstation Edition"

# One run of every command (and of the option lists) through a pipe at COLUMNS=80.
PIPED = {
    "help": ["--help"],
    **{
        f"{c}-help": [c, "--help"]
        for c in ("check", "plan", "smoke", "fix", "compare", "explain", "gpus", "rules")
    },
    "check": ["check", GLM_AIR, "--gpu", "RTX PRO 6000", "--gpus", "2"],
    "plan": ["plan", GLM_AIR, "--gpu", "RTX PRO 6000", "--gpus", "2"],
    "fix": ["fix", GLM, "--strategy", "explicit"],
    "compare": ["compare", GLM, GLM_AIR],
    "explain": ["explain", LOG],
    "gpus": ["gpus"],
    "gpus-one": ["gpus", "--gpu", "H100"],
    "rules": ["rules"],
    "rule": ["rules", "H005"],
}


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m servecheck ARGS` with stdout and stderr through pipes."""
    full_env = dict(os.environ, COLUMNS="80", **(env or {}))
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "servecheck", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def run_in_terminal(args: list[str], columns: int = 80) -> tuple[int, str]:
    """`python -m servecheck ARGS` in a pseudo-terminal of `columns` columns (NO_COLOR)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
    env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "servecheck", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=300)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def colours(text: str) -> list[str]:
    """The SGR colour parameters (foreground or background) in `text`."""
    params = [p for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";")]
    return [p for p in params if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)]


@pytest.fixture(scope="module")
def piped() -> dict[str, subprocess.CompletedProcess]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = pool.map(run, PIPED.values())
    return dict(zip(PIPED, results, strict=True))


def test_piped_output_is_whole_at_80_columns(piped):
    for name, result in piped.items():
        if name.endswith("help"):  # argparse wraps help to COLUMNS
            assert all(len(line) <= 80 for line in result.stdout.splitlines()), name
        assert result.returncode in (0, 1), (name, result.stderr)
        out = result.stdout
        assert out.strip(), name
        assert "…" not in out, (name, [line for line in out.splitlines() if "…" in line])
        assert "\x1b[" not in out, name  # plain text in a pipe
        assert not any(line.endswith(" ") for line in out.splitlines()), name


def test_piped_gpu_names_and_options_are_whole(piped):
    lines = piped["gpus"].stdout.splitlines()
    for gpu in load_gpus():
        assert any(gpu.name in line for line in lines), gpu.name
    assert any(line.startswith("H100 SXM ") for line in lines)  # `| grep H100` finds it
    assert PRO6000 in piped["check"].stdout and PRO6000 in piped["plan"].stdout
    assert "--kv-cache-dtype DTYPE" in piped["plan-help"].stdout
    for option in ("--gpu-memory-utilization", "--max-num-batched-tokens", "--no-expert-parallel"):
        assert option in piped["plan-help"].stdout
    assert "TP2+EP" in piped["plan"].stdout and "moe.shared.gate_up_proj" in piped["check"].stdout
    for name in ("help", "check-help", "plan-help", "fix-help"):
        assert "<bool>" not in piped[name].stdout and "[default: False]" not in piped[name].stdout


def test_piped_words_for_users(piped):
    text = "\n".join(r.stdout for r in piped.values()).lower()
    for word in ("seed", "option 2", "option 3", "investigation"):
        assert word not in text, word
    assert "{" not in piped["rule"].stdout  # every placeholder of the rule's source filled
    assert "1 errors" not in text and "1 entries" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["gpus"],
        ["plan", GLM_AIR, "--gpu", "RTX PRO 6000", "--gpus", "2"],
        ["check", GLM_AIR, "--gpu", "H100"],
        ["plan", "--help"],
    ],
    ids=["gpus", "plan", "check", "plan-help"],
)
def test_terminal_of_80_columns_wraps_and_never_cuts(args):
    code, raw = run_in_terminal(args)
    assert code in (0, 1), raw
    assert not colours(raw)  # NO_COLOR: no colours (bold and italic may stay)
    out = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    lines = out.splitlines()
    assert "…" not in out, [line for line in lines if "…" in line]
    assert all(len(line.rstrip()) <= 80 for line in lines), max(lines, key=len)
    words = {w for line in lines for w in line.split()}
    if args[0] == "gpus":
        for gpu in load_gpus():  # names wrap inside their cell, at word boundaries
            assert set(gpu.name.split()) <= words, gpu.name
    if args == ["plan", "--help"]:
        assert "--kv-cache-dtype" in words and "--gpu-memory-utilization" in words
    if args[0] == "check":
        assert "moe.shared.gate_up_proj" in words


def test_explain_alone_on_a_terminal_prints_its_usage():
    code, out = run_in_terminal(["explain"])
    assert code == 2
    assert "usage: servecheck explain" in out and "pipe a log" in out


def test_python_dash_m_version_and_quiet():
    version = run(["--version"])
    assert version.returncode == 0 and version.stdout.strip() == f"servecheck {__version__}"
    quiet = run(["check", GLM_AIR, "-q"])
    assert quiet.returncode == 0 and quiet.stdout == ""


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_follow_one_mapping(tmp_path):
    # 0: no error findings (warnings allowed)
    assert invoke(["check", GLM_AIR]).exit_code == 0
    # 1: error findings, in check, plan and compare alike
    failing = broken.ignore_only_q_proj(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "bad")
    bad = invoke(["check", str(failing), "-q"])
    assert bad.exit_code == 1 and bad.stdout.startswith("R001 ")  # -q: the errors only
    assert invoke(["compare", LLAMA_FP8, str(failing)]).exit_code == 1
    too_long = ["plan", GLM_AIR, "--gpu", "RTX PRO 6000", "--gpus", "2"]
    plan = invoke([*too_long, "--max-model-len", "300000", "-f", "json"])
    assert plan.exit_code == 1 and "M007" in {
        f["code"] for f in json.loads(plan.stdout)["findings"]
    }
    assert invoke(["plan", GLM_AIR, "--gpu", "RTX PRO 6000"]).exit_code == 1  # nothing fits
    # 1: nothing found where something was asked for
    assert invoke(["explain", "-"], input="all good\n").exit_code == 1
    # 2: bad input or usage
    assert invoke(["check", str(tmp_path / "missing")]).exit_code == 2
    assert invoke(["check", GLM_AIR, "--gpus", "0"]).exit_code == 2
    assert invoke(["nonsense"]).exit_code == 2
    assert invoke([]).exit_code == 2
    assert invoke(["rules", "H005", "--", "--tensor-parallel-size", "2"]).exit_code == 2


def test_fix_write_on_a_config_that_needs_nothing_exits_zero(tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(FIXTURES / "llama-FP8_DYNAMIC", model)
    before = (model / "config.json").read_bytes()
    result = invoke(["fix", str(model), "--write"])
    assert result.exit_code == 0, result.output
    assert "Nothing written" in result.stdout
    assert (model / "config.json").read_bytes() == before
    assert not (model / "config.json.orig").exists()


def test_unexpected_errors_are_one_message_and_a_pointer(monkeypatch):
    import servecheck.api

    def boom(*args, **kwargs):
        raise RuntimeError("kaput")

    monkeypatch.setattr(servecheck.api, "check", boom)
    result = invoke(["check", GLM_AIR])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "kaput" in result.stderr and "report it" in result.stderr
    assert "SERVECHECK_DEBUG=1" in result.stderr
    with pytest.raises(RuntimeError):
        invoke(["check", GLM_AIR], env={"SERVECHECK_DEBUG": "1"})


def test_vllm_arguments_after_double_dash_are_kept_as_a_list():
    own, rest = split_vllm_args(["check", "m", "--gpu", "H100", "--", "--max-model-len", "8192"])
    assert own == ["check", "m", "--gpu", "H100"] and rest == ["--max-model-len", "8192"]
    assert split_vllm_args(["check", "m"]) == (["check", "m"], [])
    result = invoke(["check", GLM_AIR, "-f", "json", "--", "--max-model-len", "8192"])
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"]


def test_json_for_every_command():
    for args in (
        ["rules", "-f", "json"],
        ["rules", "R001", "-f", "json"],
        ["gpus", "-f", "json"],
        ["gpus", "--gpu", "L4", "-f", "json"],
        ["explain", LOG, "-f", "json"],
        ["compare", GLM, GLM_AIR, "-f", "json"],
        ["fix", GLM, "-f", "json", "--strategy", "conventional"],
    ):
        result = invoke(args)
        assert result.exit_code in (0, 1), (args, result.output)
        json.loads(result.stdout)
    rule = json.loads(invoke(["rules", "R009", "-f", "json"]).stdout)
    assert rule["code"] == "R009" and "{" not in rule["mirrors"] and "{ver}" in rule["vllm_ref"]
