"""Start-up of the command line, whole processes: medians of N runs each.

    python benchmarks/bench_startup.py [--repeat 15]

Times `python -c pass` (the interpreter alone), `servecheck --help`, `servecheck check --help`,
`python -m servecheck --help` and a config-only `servecheck check --format json` on the
shipped GLM-4.5-Air example, each as a new process with stdout to /dev/null. Byte-compiles the
package first (an installed package has its .pyc files; PYTHONDONTWRITEBYTECODE would
otherwise make every run compile from source). Goals (issue 15): --help <= 0.15 s, a
config-only check <= 0.3 s.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "glm-4.5-air-derestricted-fp8" / "config.json"
CASES = {
    "python -c pass": ["-c", "pass"],
    "servecheck --help": ["-m", "servecheck", "--help"],
    "servecheck check --help": ["-m", "servecheck", "check", "--help"],
    "servecheck plan --help": ["-m", "servecheck", "plan", "--help"],
    "check config.json --format json": ["-m", "servecheck", "check", str(EXAMPLE), "-f", "json"],
    "check config.json (text, piped)": ["-m", "servecheck", "check", str(EXAMPLE)],
}


def times(args: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, check=False)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    compileall.compile_dir(ROOT / "src" / "servecheck", quiet=1)
    print(f"{'command':34s} {'median':>8s} {'min':>8s}   ({repeat} runs each)")
    for label, args in CASES.items():
        t = times(args, repeat)
        print(f"{label:34s} {statistics.median(t):7.3f}s {min(t):7.3f}s")


if __name__ == "__main__":
    main()
