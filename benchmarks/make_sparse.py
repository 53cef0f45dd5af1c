"""Write a shape-exact *sparse* checkpoint: real safetensors headers, data regions left as holes.

    python benchmarks/make_sparse.py examples/glm-4.5-air-derestricted-fp8 /tmp/air-fp8

The tensor list comes from servecheck's own model of the config (every module's expected
checkpoint tensors under its resolved scheme), so the fake is consistent with the config by
construction. Each shard is `<u64 header length><JSON header>` followed by a truncate() to the
full size: the file's apparent size is real, its disk usage is only the headers. For
benchmarks; never commit the output.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path

from servecheck.api import check
from servecheck.checks.expected import module_tensors
from servecheck.source.safetensors import DTYPE_BITS


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
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    sizes = [math.ceil(math.prod(s) * DTYPE_BITS[d] / 8) for _, d, s in tensors]
    per_shard = math.ceil(sum(sizes) / shards)
    weight_map: dict[str, str] = {}
    groups: list[list[int]] = [[]]
    acc = 0
    for i, size in enumerate(sizes):
        if acc >= per_shard and len(groups) < shards:
            groups.append([])
            acc = 0
        groups[-1].append(i)
        acc += size
    for k, idx in enumerate(groups, 1):
        name = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        header: dict = {"__metadata__": {"format": "pt"}}
        offset = 0
        for i in idx:
            tname, dtype, shape = tensors[i]
            header[tname] = {
                "dtype": dtype,
                "shape": list(shape),
                "data_offsets": [offset, offset + sizes[i]],
            }
            weight_map[tname] = name
            offset += sizes[i]
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with (out / name).open("wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            f.truncate(8 + len(raw) + offset)
    index = {"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return {"tensors": len(tensors), "shards": len(groups), "bytes": sum(sizes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a config.json or a folder holding one")
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=47)
    args = parser.parse_args()
    print(json.dumps(write(args.config, args.out, args.shards)))


if __name__ == "__main__":
    main()
