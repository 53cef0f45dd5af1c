#!/usr/bin/env python3
"""Fuzz servecheck with hostile copies of the fixture checkpoints and count the outcomes.

    python scripts/fuzz.py --cases 100000 --jobs 8          # the library function behind check
    python scripts/fuzz.py --cases 3000 --cli 2000          # + the nastiest through the CLI
    python scripts/fuzz.py --case 1234 -v                   # one case, with its traceback

Every case is made from its number alone (tests/fuzzcases.py: the same number, the same
files), mutated in a fresh folder and checked in one of --jobs worker processes, timed, with
a timer that stops a hang and an address-space limit that stops a runaway allocation. The CLI
pass runs each command in a forked child with its output captured. Outcomes:

    report       check() returned a report
    input_error  check() raised InputError (a clear sentence for the user)
    crash        any other exception, or the child died (the crash sites are listed)
    slow         over --max-seconds (stopped at 10x that)
    big          peak memory grew by more than --max-mb

The CLI pass runs `servecheck check/plan/fix ...` on the cases that ended in input_error or
crash (the nastiest) and counts runs that printed a traceback or exited with a code other
than 0, 1 or 2. Exit status: 0 when there was no crash, slow, big or CLI failure, else 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

OUTCOMES = ("report", "input_error", "crash", "slow", "big")


def _private_env(base: Path) -> None:
    """No network, no user caches: a closed Hub endpoint and a private cache folder."""
    os.environ.update(
        HF_HOME=str(base / "hf"),
        SERVECHECK_CACHE_DIR=str(base / "cache"),
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "SERVECHECK_DEBUG"):
        os.environ.pop(var, None)


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _site(exc: BaseException) -> str:
    """Exception type and the innermost servecheck frame (file:line function)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "servecheck" in f.filename] or frames
    where = ""
    if ours:
        f = ours[-1]
        path = f.filename.split("src/")[-1] if "src/" in f.filename else Path(f.filename).name
        where = f" at {path}:{f.lineno} {f.name}"
    return f"{type(exc).__name__}{where}"


class _Timeout(BaseException):
    """Raised by SIGALRM in a case that runs far past its time."""


def _on_alarm(signum, frame):
    raise _Timeout()


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_case(number: int, base: Path, args: argparse.Namespace) -> dict:
    """Make case `number` and check it in this process, timed; memory is the growth of this
    process's peak RSS over its RSS before the case (a new peak only: a case that stays under
    the worker's earlier peak counts 0, so the count of `big` cases is exact when it is 0)."""
    from fuzzcases import make_case
    from servecheck.api import check
    from servecheck.errors import InputError

    folder = base / f"c{number}"
    result: dict = {"number": number}
    try:
        case = make_case(number, folder)
        result["label"] = case.label()
    except Exception as exc:  # a mutation that does not apply to this fixture
        shutil.rmtree(folder, ignore_errors=True)
        return {**result, "outcome": "skipped", "site": _site(exc)}
    signal.signal(signal.SIGALRM, _on_alarm)
    rss0, peak0 = _rss_kb(), _maxrss_kb()
    start = time.perf_counter()
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, args.max_seconds * 10)
            check(case.model, **case.kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result["outcome"] = "report"
    except InputError as exc:
        result["outcome"] = "input_error"
        result["message"] = str(exc)[:300]
    except _Timeout as exc:
        result["outcome"] = "slow"
        result["site"] = "stopped after 10x --max-seconds in " + _site(exc)
    except BaseException as exc:
        result["outcome"] = "crash"
        result["site"] = _site(exc)
        if args.verbose:
            traceback.print_exc()
    result["seconds"] = time.perf_counter() - start
    peak = _maxrss_kb()
    result["mb"] = (peak - rss0) / 1024 if peak > peak0 else 0.0
    shutil.rmtree(folder, ignore_errors=True)
    if result["outcome"] in ("report", "input_error"):
        if result["seconds"] > args.max_seconds:
            result["outcome"] = "slow"
            result["site"] = f"{result['seconds']:.1f} s"
        elif result["mb"] > args.max_mb:
            result["outcome"] = "big"
            result["site"] = f"+{result['mb']:.0f} MB"
    return result


def _run_forked(target, *a) -> tuple[dict | None, int]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            target(*a, wfd)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    return (json.loads(data) if data else None), status


def _worker(job: tuple[list[int], str, argparse.Namespace]) -> list[dict]:
    numbers, base, args = job
    return [run_case(n, Path(base), args) for n in numbers]


def _init_worker() -> None:
    import fuzzcases  # noqa: F401

    limit = 6 * 2**30  # a runaway allocation ends in MemoryError, counted as a crash
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _warm_up()


def _warm_up() -> None:
    """Import every stage and parse the knowledge tables once, as a long-running process
    would have: a case's time is then its own work, not the first import of the planner."""
    from fuzzcases import FIXTURES
    from servecheck.api import check
    from servecheck.core import Target

    gpu = Target("H100", "gpu", 90, 80 * 2**30, count=2)
    for name in ("llama-FP8", "qwen3moe-W4A16", "glm4moe-NVFP4"):
        for version in ("0.11.0", "0.24.0", None):
            check(FIXTURES / name, target=gpu, vllm_version=version)
        check(FIXTURES / name, target=Target("cpu", "cpu"))

    import servecheck.api  # noqa: F401  (imported once per worker, forked per case)


# --------------------------------------------------------------------------- CLI pass

CLI_FORMS = (
    ["check", "{m}"],
    ["check", "{m}", "--gpu", "H100", "-v"],
    ["check", "{m}", "--format", "json"],
    ["check", "{m}", "--format", "markdown", "--gpu", "H200", "--gpus", "2"],
    ["check", "{m}", "--gpu", "H100", "--gpus", "100000"],
    ["check", "{m}", "--vllm-version", "0.11.0", "-q"],
    ["plan", "{m}", "--gpu", "H100"],
    ["fix", "{m}"],
    ["fix", "{m}", "--write"],
    ["fix", "{m}", "--out", "{out}", "--force"],
    ["compare", "{m}", "{m}"],
)


def _cli_child(number: int, base: Path, form: int, wfd: int) -> None:
    from fuzzcases import make_case
    from servecheck import cli

    folder = base / f"c{number}"
    try:
        case = make_case(number, folder)
    except Exception as exc:  # a mutation that does not apply (counted as skipped)
        os.write(
            wfd, json.dumps({"number": number, "code": "skipped", "site": _site(exc)}).encode()
        )
        return
    argv = [a.format(m=case.model, out=base / f"out{number}") for a in CLI_FORMS[form]]
    out = os.open(folder.parent / f"o{number}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
    signal.setitimer(signal.ITIMER_REAL, 60)
    os.dup2(out, 1)
    os.dup2(out, 2)
    code: object
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = "uncaught"
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        traceback.print_exc()
    text = Path(folder.parent / f"o{number}").read_text(errors="replace")
    result = {"number": number, "argv": argv, "code": code}
    result["traceback"] = "Traceback (most recent call last)" in text
    result["bug"] = "failed unexpectedly" in text
    result["tail"] = text[-600:]
    os.write(wfd, json.dumps(result).encode())


def run_cli(number: int, base: Path, form: int) -> dict:
    result, status = _run_forked(_cli_child, number, base, form)
    shutil.rmtree(base / f"c{number}", ignore_errors=True)
    shutil.rmtree(base / f"out{number}", ignore_errors=True)
    (base / f"o{number}").unlink(missing_ok=True)
    if result is None:
        return {"number": number, "code": f"died ({status})", "traceback": True, "bug": True}
    return result


def _cli_worker(job: tuple[list[tuple[int, int]], str]) -> list[dict]:
    items, base = job
    return [run_cli(n, Path(base), form) for n, form in items]


# --------------------------------------------------------------------------- main


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="number of cases (default 2000)")
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--case", type=int, help="run this one case only (with -v: traceback)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--max-mb", type=float, default=300.0)
    parser.add_argument("--cli", type=int, default=0, help="CLI runs of the nastiest cases")
    parser.add_argument("--json", type=Path, help="write every result here (JSON lines)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="servecheck-fuzz-", dir="/dev/shm"))
    _private_env(base)
    try:
        if args.case is not None:
            _init_worker()
            run_case(args.case, base, args)  # once to warm the caches the case uses
            result = run_case(args.case, base, args)
            print(json.dumps(result, indent=1))
            return 0 if result["outcome"] in ("report", "input_error") else 1
        return _campaign(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _campaign(args: argparse.Namespace, base: Path) -> int:
    numbers = list(range(args.start, args.start + args.cases))
    jobs = [(chunk, str(base), args) for chunk in _chunks(numbers, 50)]
    counts: collections.Counter = collections.Counter()
    by_family: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    sites: dict[str, list[int]] = collections.defaultdict(list)
    nasty: list[int] = []
    worst = {"seconds": 0.0, "mb": 0.0}
    sink = args.json.open("w") if args.json else None
    start = time.time()
    with multiprocessing.Pool(args.jobs, initializer=_init_worker) as pool:
        for results in pool.imap_unordered(_worker, jobs):
            for r in results:
                counts[r["outcome"]] += 1
                family = r.get("label", "#? ?").split()[1]
                by_family[family][r["outcome"]] += 1
                worst["seconds"] = max(worst["seconds"], r.get("seconds", 0))
                worst["mb"] = max(worst["mb"], r.get("mb", 0))
                if r["outcome"] not in ("report", "input_error", "skipped"):
                    key = f"{r['outcome']}: {r.get('site', '')}"
                    sites[key].append(r["number"])
                if r["outcome"] != "report":
                    nasty.append(r["number"])
                if sink:
                    sink.write(json.dumps(r) + "\n")
            done = sum(counts.values())
            if done % 5000 < 50:
                print(f"  {done:,} cases, {time.time() - start:.0f} s", file=sys.stderr)
    wall = time.time() - start
    print(
        f"{args.cases:,} cases (numbers {numbers[0]}..{numbers[-1]}) in {wall:.0f} s "
        f"with {args.jobs} processes"
    )
    for outcome in (*OUTCOMES, "skipped"):
        print(f"  {outcome:12} {counts[outcome]:>8,}")
    print(f"  slowest {worst['seconds']:.2f} s, most memory +{worst['mb']:.0f} MB")
    print("by family:")
    for family in sorted(by_family):
        row = ", ".join(f"{k} {v}" for k, v in sorted(by_family[family].items()))
        print(f"  {family:14} {row}")
    if sites:
        print("sites (cases, examples):")
        for key, cases in sorted(sites.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(cases):>6}  {key}  e.g. {cases[:5]}")
    failed = any(counts[o] for o in ("crash", "slow", "big"))
    if args.cli:
        failed |= _cli_campaign(args, base, nasty or numbers)
    if sink:
        sink.close()
    return 1 if failed else 0


def _cli_campaign(args: argparse.Namespace, base: Path, nasty: list[int]) -> bool:
    items = [(nasty[i % len(nasty)], i % len(CLI_FORMS)) for i in range(args.cli)]
    counts: collections.Counter = collections.Counter()
    bad: list[dict] = []
    start = time.time()
    with multiprocessing.Pool(args.jobs, initializer=_init_worker) as pool:
        for results in pool.imap_unordered(
            _cli_worker, [(c, str(base)) for c in _chunks(items, 20)]
        ):
            for r in results:
                counts[str(r["code"])] += 1
                if r["code"] == "skipped":
                    continue
                if r["traceback"] or r["bug"] or r["code"] not in (0, 1, 2):
                    bad.append(r)
    print(
        f"CLI: {args.cli:,} runs of the nastiest cases in {time.time() - start:.0f} s; "
        f"exit codes {dict(sorted(counts.items()))}; {len(bad)} with a traceback, a bug "
        "message or another exit code"
    )
    for r in bad[:20]:
        print(f"  #{r['number']} {' '.join(r.get('argv', []))[:120]} -> {r['code']}")
        print("    " + r.get("tail", "").strip().replace("\n", "\n    ")[-400:])
    return bool(bad)


if __name__ == "__main__":
    sys.exit(main())
