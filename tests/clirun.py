"""Run the real command line in this process, capturing what it writes (a CliRunner for argparse).

result = invoke(["check", path, "--format", "json"], env={"COLUMNS": "80"}, input="log text")
result.exit_code, result.stdout, result.stderr, result.output (stdout then stderr)
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from servecheck.cli import main


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(
    args: Sequence[str], input: str | None = None, env: Mapping[str, str] | None = None
) -> Result:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
    saved_env = dict(os.environ)
    saved = sys.stdin, sys.stdout, sys.stderr
    os.environ.update(env or {})
    sys.stdin, sys.stdout, sys.stderr = stdin, out, err
    try:
        code = main([str(a) for a in args])
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue())
