"""Benchmark reading a Hub model: requests, bytes and wall time, cold and warm.

    python benchmarks/bench_remote.py [--latency 0.05] [--repeat 3]

Builds the shape-exact sparse GLM-4.5 FP8 checkpoint (93 shards, ~89k tensors; real headers,
no data) in a temporary folder, serves it from tests/hub_server.py on loopback with the given
latency injected into every request (default 50 ms, a far-away Hub), and measures:
  cold   servecheck's header cache and the HF cache empty: repo info, config.json, the index,
         and every shard's header by range requests;
  warm   the same revision again: one request (revision -> commit), headers from the cache;
  pinned the same commit named by its sha: no request.
For each: requests the server saw (and per shard), bytes it sent against the header bytes,
wall time of opening the model (source.resolve.read_hub_model) and of the whole
`servecheck.api.check`. Best of --repeat runs; every cold run starts from empty caches.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # no user-agent registry fetch

from make_sparse import write  # noqa: E402

from hub_server import HubServer  # noqa: E402
from servecheck.api import check  # noqa: E402
from servecheck.source.local import open_local  # noqa: E402
from servecheck.source.modelref import HubRef  # noqa: E402
from servecheck.source.resolve import read_hub_model  # noqa: E402

REPO = "zai-org/GLM-4.5-FP8"


def run(hub: HubServer, ref: HubRef, cache: Path, whole: bool) -> dict:
    os.environ["SERVECHECK_CACHE_DIR"] = str(cache)
    hub.clear_log()
    start = time.perf_counter()
    if whole:
        check(str(ref))
        stats = None
    else:
        stats = read_hub_model(ref).stats
    wall = time.perf_counter() - start
    log = hub.requests()
    per_shard = Counter(r.path for r in log if r.path.endswith(".safetensors"))
    return {
        "wall": wall,
        "requests": len(log),
        "max_per_shard": max(per_shard.values(), default=0),
        "shards": len(per_shard),
        "sent": sum(r.sent for r in log),
        "shard_sent": sum(r.sent for r in log if r.path.endswith(".safetensors")),
        "header_bytes": stats.header_bytes if stats else None,
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = tmp_path / "glm-4.5-fp8"
        built = write(ROOT / "examples" / "glm-4.5-fp8", folder, 93)
        hub = HubServer().start()
        os.environ["HF_ENDPOINT"] = hub.url
        os.environ["HF_HOME"] = str(tmp_path / "hf")
        sha = hub.add_folder(REPO, folder)
        hub.latency = args.latency
        print(
            f"{REPO}: {built['shards']} shards, {built['tensors']:,} tensors, "
            f"{built['bytes'] / 2**30:.0f} GiB of weights; {args.latency * 1000:.0f} ms per request"
        )
        local = min(_timed(lambda: open_local(folder)) for _ in range(args.repeat))
        local_check = min(_timed(lambda: check(folder)) for _ in range(args.repeat))
        print(
            f"the same files on disk: open {local:.2f} s, servecheck check {local_check:.2f} s "
            "(the floor for warm runs: parsing ~89k header entries)"
        )
        for whole in (False, True):
            what = "servecheck check" if whole else "open (headers)"
            colds, warms, pinned = [], [], []
            for i in range(args.repeat):
                cache = tmp_path / f"cache-{whole}-{i}"
                colds.append(run(hub, HubRef(REPO), cache, whole))
                warms.append(run(hub, HubRef(REPO), cache, whole))
                pinned.append(run(hub, HubRef(REPO, sha), cache, whole))
            for label, runs in (("cold", colds), ("warm", warms), ("pinned", pinned)):
                r = min(runs, key=lambda x: x["wall"])
                line = f"{what:17} {label:6} {r['wall']:.2f} s  {r['requests']} requests"
                if r["shards"]:
                    line += f" ({r['max_per_shard']} at most per shard)"
                if r["header_bytes"]:
                    ratio = r["shard_sent"] / r["header_bytes"]
                    line += (
                        f"; shards: {r['shard_sent'] / 1e6:.1f} MB sent for "
                        f"{r['header_bytes'] / 1e6:.1f} MB of headers ({ratio:.2f}x); "
                        f"{r['sent'] / 1e6:.1f} MB in all (with the index)"
                    )
                print(line)
        hub.stop()


if __name__ == "__main__":
    main()
