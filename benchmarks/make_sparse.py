"""Write a shape-exact *sparse* checkpoint: real safetensors headers, data regions left as holes.

    python benchmarks/make_sparse.py examples/glm-4.5-air-derestricted-fp8 /tmp/air-fp8

The tensor list comes from servecheck's own model of the config (every module's expected
checkpoint tensors under its resolved scheme), so the fake is consistent with the config by
construction. tests/fixtures/sparse.py writes each shard as `<u64 header length><JSON header>`
followed by a truncate() to the full size: the file's apparent size is real, its disk usage is
only the headers. For benchmarks; never commit the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from servecheck.api import check
from servecheck.checks.expected import module_tensors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import sparse  # the stdlib writer the tests use


def tensor_list(config_path: Path) -> tuple[dict, list[tuple[str, str, tuple[int, ...]]]]:
    report = check(config_path)
    model_dtype = {"bfloat16": "BF16", "float16": "F16"}.get(report.model.dtype or "", "BF16")
    by_res = report.resolution.by_name()
    out = []
    for m in report.inventory.modules:
        for exp in module_tensors(m, by_res[m.name]):
            if exp.dtypes is None or model_dtype in exp.dtypes:
                dtype = model_dtype
            else:
                dtype = sorted(exp.dtypes)[0]
            out.append((exp.name, dtype, exp.shape if exp.shape is not None else (1,)))
    return report.checkpoint.config, out


def write(config_dir: Path, out: Path, shards: int) -> dict:
    config, tensors = tensor_list(config_dir)
    files = sparse.split([[n, d, list(s)] for n, d, s in tensors], shards)
    spec = {"config": config, "shards": files, "index": sparse.index_of(files)}
    sparse.write(spec, out)
    size = sum(sparse.nbytes(d, s) for _, d, s in tensors)
    return {"tensors": len(tensors), "shards": len(files), "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a config.json or a folder holding one")
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=47)
    args = parser.parse_args()
    print(json.dumps(write(args.config, args.out, args.shards)))


if __name__ == "__main__":
    main()
