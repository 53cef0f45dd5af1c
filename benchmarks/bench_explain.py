"""`servecheck explain` on a long log: a 10,000-line start-up log (the committed real logs of
tests/data/logs, prefixed as vLLM's processes prefix them, with INFO progress lines between
them) explained whole, against a baseline in the same process: splitting the text into lines
and stripping ANSI colours with one regex (the least any reader does).

    python benchmarks/bench_explain.py [--lines 10000] [--repeat 5]

Two logs: one failure after 10,000 lines of progress, and the same length with every real log
spread through it (one attempt each). Reports the best of N for: the baseline; reading
(prefixes stripped, candidates collected); explain with the tables loaded (the steady state);
and the first explain in a new process (loading and indexing the curated and mined tables).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "tests" / "data" / "logs"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def make_log(n_lines: int, spread: bool = True) -> str:
    """INFO progress lines from two processes, with every real log's lines spread through it
    (`spread`; each is an attempt of its own) or none; the last real log ends the text."""
    real = []
    for path in sorted(LOGS.glob("*.log")):
        real.append([ln for ln in path.read_text().splitlines() if not ln.startswith("# ")])
    out: list[str] = []
    i = 0
    while len(out) < n_lines:
        pid = 100 + i % 2
        out.append(
            f"(EngineCore_DP0 pid={pid}) INFO 12-01 10:{i // 60 % 60:02d}:{i % 60:02d} "
            f"[gpu_model_runner.py:{1000 + i % 97}] Loading safetensors shard {i % 93}/93"
        )
        if spread and i % 250 == 0:
            out += real[(i // 250) % len(real)]
        i += 1
    return "\n".join(out[:n_lines] + real[-1])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for spread in (False, True):
        run(make_log(args.lines, spread), args.repeat)


def run(text: str, repeat: int) -> None:
    path = Path("/tmp/servecheck-bench-explain.log")
    path.write_text(text)
    cold_cmd = [
        sys.executable,
        "-c",
        "import sys,time; t=time.perf_counter(); from servecheck.explain import explain_text; "
        f"e=explain_text(open({str(path)!r}).read()); print(time.perf_counter()-t)",
    ]
    cold = min(
        float(subprocess.run(cold_cmd, capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    )
    from servecheck.explain import explain_text, parse_log

    explain_text(text)  # load and index the tables
    base = best(lambda: [ANSI.sub("", ln) for ln in text.splitlines()], repeat)
    read = best(lambda: parse_log(text), repeat)
    warm = best(lambda: explain_text(text), repeat)
    expl = explain_text(text)
    lines = text.count("\n") + 1
    print(f"log: {lines} lines, {len(text) // 1024} KiB; {len(expl.failures)} attempt(s) found")
    print(f"baseline (split + ANSI regex)   {base * 1000:8.1f} ms   1.0x")
    print(f"read (prefixes, candidates)     {read * 1000:8.1f} ms {read / base:6.1f}x")
    print(f"explain, tables loaded          {warm * 1000:8.1f} ms {warm / base:6.1f}x")
    print(f"explain, new process (import,   {cold * 1000:8.1f} ms {cold / base:6.1f}x")
    print("  tables read and indexed)\n")


if __name__ == "__main__":
    main()
