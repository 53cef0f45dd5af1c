"""Hostile variants of the committed fixture checkpoints, for the fuzz tests and scripts/fuzz.py.

Standard library only. `make_case(number, folder)` copies one fixture into `folder` and applies
one family of mutations chosen from `number` alone (the same number always gives the same case),
returning what to pass to `check()`. Each family mirrors one kind of file a stranger publishes:

    header_prefix  the 8-byte header length (zero, huge, off by one) or a cut file
    header_text    the header's JSON bytes (non-UTF-8, deep nesting, huge numbers, cut)
    header_struct  the header's entries (dtypes, shapes, offsets, names, __metadata__)
    config_value   config.json values (NaN, Infinity, 10**100, wrong types, absurd counts)
    config_text    config.json bytes (not UTF-8, deep nesting, empty, huge, not an object)
    quant          quantization_config (wrong types anywhere, bad `re:` patterns, zero blocks)
    index          model.safetensors.index.json (weight_map types, names, missing shards)
    side_file      hf_quant_config.json, tokenizer_config.json, quantize_config.json
    special_file   config.json, shard or index as a device, a folder, a FIFO, a link loop
    target         the GPU count, memory and capability, and the vLLM release asked for
    model_arg      MODEL given as a shard, as config.json, or missing
    gguf           a GGUF file's bytes (counts, lengths, types, a cut file)

Hypothesis tests drive the same mutators with their own value strategy (`values` argument).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
INDEX_NAME = "model.safetensors.index.json"

FAMILIES = (
    "header_prefix",
    "header_text",
    "header_struct",
    "config_value",
    "config_text",
    "quant",
    "index",
    "side_file",
    "special_file",
    "target",
    "model_arg",
    "gguf",
)


class Raw:
    """JSON text written verbatim where a value goes (numbers json.dumps cannot write, deep
    nesting, NaN spellings)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


BAD_REGEX = (
    "re:(",
    "re:a{2,1}",
    "re:(a)\\2",
    "re:[",
    "re:*",
    "re:(?P<x>a)(?P<x>b)",
    "re:\\",
    "re:(?<=a+)b",
    "re:(a+)+$",
    "re:(.*a){20}$",
    "re:(x+x+)+y",
    "re:" + "(" * 300 + ")" * 300,
    "re:" + "a" * 10000,
    "re:.*mlp.gate",
    "re:.*",
    "re:\\p{L}+",
    "re:(?i)LINEAR",
    "re:a{99999999999}",
    "re:(?#comment",
    "re:\ud800",
)

ARCHES = (
    "LlamaForCausalLM",
    "Qwen3MoeForCausalLM",
    "Glm4MoeForCausalLM",
    "DeepseekV3ForCausalLM",
    "MixtralForCausalLM",
    "FooForCausalLM",
    "",
    "\ud800",
    "x" * 5000,
)

CONFIG_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "num_experts",
    "n_routed_experts",
    "num_local_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "n_shared_experts",
    "first_k_dense_replace",
    "decoder_sparse_step",
    "moe_layer_freq",
    "mlp_only_layers",
    "n_group",
    "topk_group",
    "routed_scaling_factor",
    "architectures",
    "model_type",
    "torch_dtype",
    "dtype",
    "tie_word_embeddings",
    "rope_scaling",
    "rope_theta",
    "rope_parameters",
    "partial_rotary_factor",
    "sliding_window",
    "layer_types",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "num_nextn_predict_layers",
    "text_config",
    "quantization_config",
    "compression_config",
    "rms_norm_eps",
    "hidden_act",
    "attention_bias",
    "max_window_layers",
    "use_sliding_window",
    "interleave_moe_layer_step",
    "attention_chunk_size",
    "index_topk",
    "index_head_dim",
    "norm_topk_prob",
    "transformers_version",
    "kv_cache_dtype",
)

QUANT_TEMPLATES: tuple[dict, ...] = (
    {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
    {"quant_method": "fp8", "activation_scheme": "static", "ignored_layers": ["lm_head"]},
    {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
    {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]},
    {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": ["lm_head"]},
    {
        "producer": {"name": "modelopt", "version": "0.29"},
        "quantization": {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
    },
    {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "ignore": ["lm_head"],
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": 8,
                    "type": "float",
                    "strategy": "block",
                    "block_structure": [128, 128],
                    "symmetric": True,
                    "dynamic": False,
                },
                "input_activations": {
                    "num_bits": 8,
                    "type": "float",
                    "strategy": "group",
                    "group_size": 128,
                    "symmetric": True,
                    "dynamic": True,
                },
            }
        },
    },
    {"quant_method": "moe_wna16", "bits": 4, "group_size": 128, "linear_quant_method": "gptq"},
    {"quant_method": "experts_int8"},
    {"quant_method": "nonexistent_method"},
)


def _deep(depth: int, open_: str = "[", close: str = "]") -> Raw:
    return Raw(open_ * depth + close * depth)


def _deep_obj(depth: int) -> Raw:
    return Raw('{"a":' * depth + "1" + "}" * depth)


def hostile_value(rng: random.Random) -> Any:
    """One value a hostile or broken file might hold where servecheck expects something else."""
    pool: list[Callable[[], Any]] = [
        lambda: 0,
        lambda: -1,
        lambda: 1,
        lambda: 3,
        lambda: 2**31,
        lambda: 2**63,
        lambda: 2**64 + 1,
        lambda: 10**9,
        lambda: 10**18,
        lambda: 10**100,
        lambda: -(10**100),
        lambda: Raw("9" * 5000),
        lambda: Raw("1" + "0" * 400),
        lambda: 1.5,
        lambda: -0.0,
        lambda: 1e308,
        lambda: 1e-320,
        lambda: Raw("NaN"),
        lambda: Raw("Infinity"),
        lambda: Raw("-Infinity"),
        lambda: Raw("1e999"),
        lambda: "",
        lambda: "x",
        lambda: "12",
        lambda: "\ud800",
        lambda: "a" * 100_000,
        lambda: rng.choice(BAD_REGEX),
        lambda: True,
        lambda: False,
        lambda: None,
        lambda: [],
        lambda: {},
        lambda: [1, 2],
        lambda: [0, 0],
        lambda: [-1, 5],
        lambda: ["a", "b"],
        lambda: ["x"],
        lambda: [None],
        lambda: [[1]],
        lambda: {"a": 1},
        lambda: {"0": 1},
        lambda: [rng.choice(BAD_REGEX)],
        lambda: list(range(rng.choice([3, 1000, 100_000]))),
        lambda: _deep(rng.choice([40, 70, 900, 3000, 100_000])),
        lambda: _deep_obj(rng.choice([70, 1200, 50_000])),
        lambda: rng.choice(ARCHES),
        lambda: [rng.choice(ARCHES)],
    ]
    return rng.choice(pool)()


# --------------------------------------------------------------------------- JSON with Raw


def dumps(obj: Any) -> str:
    """json.dumps that writes Raw values verbatim (and lone surrogates as escapes)."""
    raws: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj))
    for i, raw in enumerate(raws):
        text = text.replace(f'"\\u0000RAW{i}\\u0000"', raw, 1)
    return text


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_text(path: Path, text: str | bytes) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    path.write_bytes(text)


# --------------------------------------------------------------------------- headers


def _split_shard(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n], data[8 + n :]


def _write_shard(path: Path, header: bytes, rest: bytes, prefix: int | None = None) -> None:
    n = len(header) if prefix is None else prefix
    _write_text(path, struct.pack("<Q", n % 2**64) + header + rest)


def _shards(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*.safetensors") if p.is_file())


def mutate_header_prefix(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    shard = rng.choice(_shards(d))
    header, rest = _split_shard(shard)
    n = len(header)
    choice = rng.choice(["zero", "one", "minus", "plus", "max", "cap", "file", "cut", "tiny"])
    if choice == "cut":
        cut = rng.randrange(0, 8 + n + 1)
        _write_text(shard, (struct.pack("<Q", n) + header)[:cut])
    elif choice == "tiny":
        _write_text(shard, b"\x01\x02\x03")
    else:
        size = 8 + n + len(rest)
        prefix = {
            "zero": 0,
            "one": 1,
            "minus": n - 1,
            "plus": n + 1,
            "max": 2**64 - 1,
            "cap": 100_000_001,
            "file": size,
        }[choice]
        _write_shard(shard, header, rest, prefix)
    return f"{shard.name}: {choice}"


def mutate_header_text(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    shard = rng.choice(_shards(d))
    header, rest = _split_shard(shard)
    choice = rng.choice(
        ["flip", "non_utf8", "deep", "deep_inside", "number", "nan", "cut", "empty", "not_object"]
    )
    if choice == "flip":
        b = bytearray(header)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        header = bytes(b)
    elif choice == "non_utf8":
        i = rng.randrange(len(header))
        header = header[:i] + b"\xff\xfe\xe9" + header[i:]
    elif choice == "deep":
        depth = rng.choice([100, 1000, 100_000])
        header = b"[" * depth + b"]" * depth
    elif choice == "deep_inside":
        depth = rng.choice([70, 1000, 100_000])
        header = b'{"__metadata__": {"a": ' + b"[" * depth + b"]" * depth + b"}," + header[1:]
    elif choice == "number":
        header = header.replace(b'"shape":[', b'"shape":[' + b"9" * 5000 + b",", 1)
        header = header.replace(b'"shape": [', b'"shape": [' + b"9" * 5000 + b",", 1)
    elif choice == "nan":
        header = header.replace(b'"data_offsets":[', b'"data_offsets":[NaN,', 1)
        header = header.replace(b'"data_offsets": [', b'"data_offsets": [Infinity,', 1)
    elif choice == "cut":
        header = header[: rng.randrange(len(header))]
    elif choice == "empty":
        header = b""
    else:
        header = rng.choice([b"[]", b"1", b'"x"', b"null", b"{}", b"   "])
    _write_shard(shard, header, rest)
    return f"{shard.name}: {choice}"


def mutate_header_struct(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    shard = rng.choice(_shards(d))
    raw, rest = _split_shard(shard)
    header = json.loads(raw)
    names = [k for k in header if k != "__metadata__"]
    done = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        entry = header.get(name)
        if not isinstance(entry, dict):
            continue
        what = rng.choice(
            [
                "dtype",
                "shape",
                "offsets",
                "entry",
                "name",
                "metadata",
                "huge_shape",
                "drop",
                "digits_name",
                "surrogate_name",
                "extra_key",
            ]
        )
        if what == "dtype":
            entry["dtype"] = rng.choice(["F33", "", ["F32"], 5, None, "F4", "bf16", values()])
        elif what == "shape":
            entry["shape"] = values()
        elif what == "offsets":
            entry["data_offsets"] = values()
        elif what == "entry":
            header[name] = values()
        elif what == "name":
            header[
                rng.choice(
                    [
                        "",
                        "x" * 10000,
                        "model.layers.-1.mlp.up_proj.weight",
                        "model.layers.1e9.self_attn.q_proj.weight",
                        "model.layers.99999999999.mlp.down_proj.weight",
                        "../../etc/passwd",
                        "model.layers.0.mlp.experts.99999999999.w1",
                    ]
                )
            ] = header.pop(name)
            names.remove(name)
            if not names:
                break
        elif what == "metadata":
            header["__metadata__"] = rng.choice([values(), {"format": values()}, {"a": {"b": 1}}])
        elif what == "huge_shape":
            numel_bits = {"BF16": 16, "F8_E4M3": 8, "F32": 32, "U8": 8, "I32": 32}
            dims = rng.choice([[2**40, 2**40], [2**31, 2**31, 2**31], [10**30], [1, 2**62]])
            entry["shape"] = dims
            dtype = entry.get("dtype")
            bits = numel_bits.get(dtype, 16) if isinstance(dtype, str) else 16
            offsets = entry.get("data_offsets")
            begin = offsets[0] if isinstance(offsets, list) and offsets else 0
            begin = begin if type(begin) is int else 0
            n = 1
            for x in dims:
                n *= x
            entry["data_offsets"] = [begin, begin + (n * bits + 7) // 8]
        elif what == "drop":
            header.pop(name)
            names.remove(name)
            if not names:
                break
        elif what == "digits_name":
            new = name.replace("layers.0.", "layers." + "9" * rng.choice([30, 5000]) + ".", 1)
            header[new] = header.pop(name)
            names.remove(name)
            if not names:
                break
        elif what == "surrogate_name":
            header[name + "\ud800"] = header.pop(name)
            names.remove(name)
            if not names:
                break
        else:
            entry[rng.choice(["extra", "dtype2"])] = values()
        done.append(f"{what} of {name[:60]}")
    _write_shard(shard, dumps(header).encode("utf-8", "surrogatepass"), rest)
    return f"{shard.name}: " + ", ".join(done)


# --------------------------------------------------------------------------- config.json


def _paths(obj: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    out = [prefix]
    if depth > 8:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            out += _paths(v, (*prefix, i), depth + 1)
    return out


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return obj


def _delete(obj: Any, path: tuple) -> None:
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent.pop(path[-1])


def mutate_config_value(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    cfg_path = d / "config.json"
    cfg = _load(cfg_path)
    done = []
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*CONFIG_KEYS, *cfg.keys()])
        where = cfg
        if rng.random() < 0.15:
            where = cfg.setdefault("text_config", {})
            if not isinstance(where, dict):
                where = cfg
        if rng.random() < 0.1:
            where.pop(key, None)
            done.append(f"-{key}")
            continue
        if key in ("num_hidden_layers", "num_experts", "n_routed_experts", "num_local_experts"):
            # absurd counts, and the largest the limits accept (work grows with them)
            value = rng.choice(
                [values(), 10**9, 10**6, 10**100, 100_000, 0, -3, 4096, 1024, 512, 2048, 65536]
            )
        else:
            value = values()
        where[key] = value
        done.append(f"{key}={value!r}"[:80])
    _write_text(cfg_path, dumps(cfg))
    return ", ".join(done)


def mutate_config_text(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    cfg_path = d / "config.json"
    text = cfg_path.read_bytes()
    choice = rng.choice(
        [
            "latin1",
            "bom",
            "deep",
            "deep_value",
            "empty",
            "not_object",
            "cut",
            "huge",
            "nul",
            "utf16",
            "duplicate_keys",
            "big_int_text",
        ]
    )
    if choice == "latin1":
        data = text.replace(b'"model_type": "', b'"model_type": "caf\xe9', 1)
        data = data if data != text else text[:-2] + b', "x": "\xe9"}'
    elif choice == "bom":
        data = b"\xef\xbb\xbf" + text
    elif choice == "deep":
        depth = rng.choice([65, 1000, 100_000])
        data = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    elif choice == "deep_value":
        depth = rng.choice([65, 500, 5000])
        data = text.rstrip()[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    elif choice == "empty":
        data = b""
    elif choice == "not_object":
        data = rng.choice([b"[]", b"1", b"null", b'"x"', b"[{}]"])
    elif choice == "cut":
        data = text[: rng.randrange(len(text))]
    elif choice == "huge":
        pad = b" " * rng.choice([10**6, 20 * 10**6, 60 * 10**6])
        data = text.rstrip()[:-1] + b', "pad": "' + pad + b'"}'
    elif choice == "nul":
        data = text[:10] + b"\x00" + text[10:]
    elif choice == "utf16":
        data = text.decode("utf-8").encode("utf-16")
    elif choice == "duplicate_keys":
        data = text.rstrip()[:-1] + b', "num_hidden_layers": "x", "num_hidden_layers": 1e400}'
    else:
        data = text.rstrip()[:-1] + b', "vocab_size": ' + b"7" * 4400 + b"}"
    _write_text(cfg_path, data)
    return choice


# --------------------------------------------------------------------------- quantization


def mutate_quant(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    cfg_path = d / "config.json"
    cfg = _load(cfg_path)
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict) or rng.random() < 0.2:
        qc = json.loads(json.dumps(rng.choice(QUANT_TEMPLATES)))
    done = []
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(qc) if p]
        choice = rng.random()
        if choice < 0.5 and paths:
            path = rng.choice(paths)
            qc = _set(qc, path, values())
            done.append(f"{'.'.join(map(str, path))}=…")
        elif choice < 0.6 and paths:
            path = rng.choice(paths)
            _delete(qc, path)
            done.append(f"-{'.'.join(map(str, path))}")
        elif choice < 0.85:
            key = rng.choice(
                [
                    "ignore",
                    "ignored_layers",
                    "modules_to_not_convert",
                    "targets",
                    "exclude_modules",
                    "llm_int8_skip_modules",
                ]
            )
            pattern = [rng.choice(BAD_REGEX)]
            if (
                key == "targets"
                and isinstance(qc.get("config_groups"), dict)
                and qc["config_groups"]
            ):
                group = rng.choice(list(qc["config_groups"].values()))
                if isinstance(group, dict):
                    group["targets"] = pattern
            else:
                qc[key] = pattern
            done.append(f"{key}={pattern!r}"[:80])
        else:
            key = rng.choice(
                [
                    "weight_block_size",
                    "group_size",
                    "bits",
                    "block_structure",
                    "num_bits",
                    "w_bit",
                    "q_group_size",
                    "strategy",
                    "format",
                    "sparsity_config",
                    "kv_cache_scheme",
                    "quant_method",
                ]
            )
            value = rng.choice([values(), [0, 0], 0, -1, ["a", "b"], [1, 2, 3], 10**100])
            groups = qc.get("config_groups")
            if (
                key in ("num_bits", "block_structure", "strategy", "group_size")
                and isinstance(groups, dict)
                and groups
            ):
                group = rng.choice(list(groups.values()))
                if isinstance(group, dict) and isinstance(group.get("weights"), dict):
                    group["weights"][key] = value
            else:
                qc[key] = value
            done.append(f"{key}=…")
    cfg["quantization_config"] = qc
    _write_text(cfg_path, dumps(cfg))
    return ", ".join(done)


# --------------------------------------------------------------------------- index, side files


def mutate_index(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    index_path = d / INDEX_NAME
    if index_path.is_file():
        index = _load(index_path)
    else:
        weight_map = {}
        for shard in _shards(d):
            for name in json.loads(_split_shard(shard)[0]):
                if name != "__metadata__":
                    weight_map[name] = shard.name
        index = {"metadata": {"total_size": 1}, "weight_map": weight_map}
    wm = index.get("weight_map")
    choice = rng.choice(
        [
            "value",
            "values",
            "path",
            "absent",
            "not_dict",
            "drop",
            "metadata",
            "text",
            "deep",
            "many",
        ]
    )
    if choice == "value" and wm:
        wm[rng.choice(list(wm))] = values()
    elif choice == "values":
        index["weight_map"] = {k: values() for k in list(wm)[:5]}
    elif choice == "path" and wm:
        wm[rng.choice(list(wm))] = rng.choice(["../../etc/passwd", "/dev/zero", "", "."])
    elif choice == "absent" and wm:
        wm[rng.choice(list(wm))] = "model-00002-of-00002.safetensors"
    elif choice == "not_dict":
        index["weight_map"] = values()
    elif choice == "drop":
        index.pop("weight_map", None)
    elif choice == "metadata":
        index["metadata"] = values()
    elif choice == "many":
        index["weight_map"] = {f"x{i}": "model.safetensors" for i in range(200_000)}
    if choice == "text":
        _write_text(index_path, b"\xff{" + b"[" * 100_000)
    elif choice == "deep":
        index["weight_map"] = {"a": _deep(rng.choice([70, 5000]))}
        _write_text(index_path, dumps(index))
    else:
        _write_text(index_path, dumps(index))
    return choice


def mutate_side_file(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    name = rng.choice(
        [
            "hf_quant_config.json",
            "tokenizer_config.json",
            "quantize_config.json",
            "quant_config.json",
        ]
    )
    base: Any = {
        "hf_quant_config.json": {
            "producer": {"name": "modelopt"},
            "quantization": {"quant_algo": "FP8", "exclude_modules": []},
        },
        "tokenizer_config.json": {"model_max_length": 1000000000000000019884624838656},
        "quantize_config.json": {"bits": 4, "group_size": 128, "desc_act": False},
        "quant_config.json": {"w_bit": 4, "q_group_size": 128, "zero_point": True},
    }[name]
    if rng.random() < 0.2:
        _write_text(d / name, rng.choice([b"\xff\xfe", b"[" * 100_000, b"", b"[]", b"NaN"]))
        return f"{name}: bytes"
    paths = [p for p in _paths(base) if p]
    path = rng.choice(paths)
    base = _set(base, path, values())
    _write_text(d / name, dumps(base))
    return f"{name}: {'.'.join(map(str, path))}"


def mutate_special_file(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    shards = _shards(d)
    name = rng.choice(
        [
            "config.json",
            shards[0].name if shards else "config.json",
            INDEX_NAME,
            "tokenizer_config.json",
            "hf_quant_config.json",
        ]
    )
    path = d / name
    kind = rng.choice(
        [
            "dev_zero",
            "dev_urandom",
            "dev_null",
            "folder",
            "loop",
            "dangling",
            "fifo",
            "unreadable",
            "outside",
        ]
    )
    if path.is_symlink() or path.exists():
        path.unlink()
    if kind == "dev_zero":
        os.symlink("/dev/zero", path)
    elif kind == "dev_urandom":
        os.symlink("/dev/urandom", path)
    elif kind == "dev_null":
        os.symlink("/dev/null", path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "loop":
        os.symlink(path.name, path)
    elif kind == "dangling":
        os.symlink(d / "no-such-file", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "unreadable":
        path.write_text("{}")
        path.chmod(0)
    else:
        src = (
            FIXTURES
            / "llama-bf16"
            / ("model.safetensors" if "safetensors" in name else "config.json")
        )
        os.symlink(src, path)
    return f"{name}: {kind}"


def mutate_gguf(d: Path, rng: random.Random, values: Callable[[], Any]) -> str:
    """GGUF: <magic 4><version u32><tensor count u64><metadata count u64><metadata...>."""
    path = next(d.glob("*.gguf"))
    data = bytearray(path.read_bytes())
    choice = rng.choice(["counts", "flip", "cut", "version", "length", "tiny"])
    if choice == "counts":
        at = rng.choice([8, 16])
        value = rng.choice([0, 1, 2**31, 2**63, 2**64 - 1, 10**6])
        data[at : at + 8] = struct.pack("<Q", value)
    elif choice == "flip":
        end = min(len(data), 1 << 16)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(24, end)] = rng.randrange(256)
    elif choice == "cut":
        del data[rng.randrange(0, min(len(data), 1 << 16)) :]
    elif choice == "version":
        data[4:8] = struct.pack("<I", rng.choice([0, 1, 2, 4, 2**32 - 1]))
    elif choice == "length":
        # the first metadata key's length (u64 at 24): huge, zero or off by a little
        data[24:32] = struct.pack("<Q", rng.choice([0, 2**63, 2**40, 10**6, 3]))
    else:
        data = bytearray(b"GGUF\x03\x00\x00\x00")
    _write_text(path, bytes(data))
    return f"{path.name}: {choice}"


# --------------------------------------------------------------------------- call arguments

VERSIONS = (
    "0.10.0",
    "0.11.0",
    "0.24.0",
    "0.33.0",
    "0.999.0",
    "abc",
    "",
    "1" * 5000,
    "0.1",
    "0.10.0rc1",
    "v0.11",
    "0.33.0+cu128",
    "99999999999999999999.0",
    "0.-1.0",
)


def target_args(rng: random.Random, values: Callable[[], Any]) -> dict[str, Any]:
    """Keyword arguments for check(): a hostile Target and vLLM release."""
    from servecheck.core import Target

    kwargs: dict[str, Any] = {}
    hostile = rng.random() < 0.3
    if rng.random() < 0.7:
        count = rng.choice(
            [1, 2, 8, 0, -1, 7, 1000, 100_000, 10**9, 10**100]
            if hostile
            else [1, 2, 4, 8, 3, 16, 256]
        )
        memory = rng.choice(
            [80 * 2**30, 0, -1, 1, 2**70, 10**100, None]
            if hostile
            else [80 * 2**30, 141 * 2**30, 24 * 2**30, None]
        )
        capability = rng.choice(
            [90, 80, 100, 120, 0, -1, 10**9, None]
            if hostile
            else [75, 80, 86, 89, 90, 100, 120, None]
        )
        kind = rng.choice(
            ["gpu", "gpu", "gpu", "cpu", "none", "tpu"]
            if hostile
            else ["gpu", "gpu", "gpu", "cpu", "none"]
        )
        kwargs["target"] = Target(
            rng.choice(["H100", "H200", "A100", "x"]), kind, capability, memory, count=count
        )
    if rng.random() < 0.6:
        kwargs["vllm_version"] = rng.choice(VERSIONS if hostile else VERSIONS[:4])
    if rng.random() < 0.2:
        kwargs["quantization"] = rng.choice(["fp8", "awq", "x", "", "\ud800", "bitsandbytes"])
    if rng.random() < 0.2:
        kwargs["dtype"] = rng.choice(["auto", "half", "float32", "x", "", "bfloat16"])
    return kwargs


@dataclass
class Case:
    """One hostile input: what to pass to check() and how it was made."""

    number: int
    family: str
    fixture: str
    description: str
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"#{self.number} {self.family} ({self.fixture}): {self.description}"[:300]


MUTATORS: dict[str, Callable[[Path, random.Random, Callable[[], Any]], str]] = {
    "header_prefix": mutate_header_prefix,
    "header_text": mutate_header_text,
    "header_struct": mutate_header_struct,
    "config_value": mutate_config_value,
    "config_text": mutate_config_text,
    "quant": mutate_quant,
    "index": mutate_index,
    "side_file": mutate_side_file,
    "special_file": mutate_special_file,
    "gguf": mutate_gguf,
}


def fixture_names(family: str = "") -> list[str]:
    """The fixture checkpoints a family mutates: GGUF files for `gguf`, folders with a
    config.json for the others, either for `target` and `model_arg`."""
    gguf = {p.name for p in FIXTURES.iterdir() if any(p.glob("*.gguf"))}
    plain = {p.name for p in FIXTURES.iterdir() if (p / "config.json").is_file()} - gguf
    if family == "gguf":
        return sorted(gguf)
    return sorted(plain | gguf) if family in ("target", "model_arg") else sorted(plain)


def copy_fixture(name: str, folder: Path) -> Path:
    """A copy of fixture `name` at `folder` (created): small files copied, shards linked (every
    mutation unlinks a file before writing it, so the committed shards are never written)."""
    folder.mkdir(parents=True)
    for src in (FIXTURES / name).iterdir():
        if src.suffix == ".safetensors":
            os.symlink(src, folder / src.name)
        elif src.is_file():
            shutil.copyfile(src, folder / src.name)
    return folder


def apply(
    family: str,
    fixture: str,
    folder: Path,
    rng: random.Random,
    values: Callable[[], Any] | None = None,
    number: int = -1,
) -> Case:
    """Copy `fixture` to `folder` and apply one mutation of `family`."""
    values = values or (lambda: hostile_value(rng))
    d = copy_fixture(fixture, folder)
    model, kwargs, what = str(d), {}, ""
    if family in MUTATORS:
        what = MUTATORS[family](d, rng, values)
    elif family == "target":
        kwargs = target_args(rng, values)
        what = ", ".join(f"{k}={v!r}"[:100] for k, v in kwargs.items())
    else:
        shards = _shards(d)
        choice = rng.choice(["shard", "config", "missing", "empty_folder", "file_in_folder"])
        if choice == "shard" and shards:
            model = str(shards[0])
        elif choice == "config":
            model = str(d / "config.json")
        elif choice == "missing":
            model = str(d / "nope")
        elif choice == "empty_folder":
            (d / "empty").mkdir()
            model = str(d / "empty")
        else:
            model = str(d / "generation_config.json")
        what = choice
        if rng.random() < 0.5:
            kwargs = target_args(rng, values)
    return Case(number, family, fixture, what, model, kwargs)


def make_case(number: int, folder: Path) -> Case:
    """Case `number`: the fixture, family and mutation follow from the number alone."""
    rng = random.Random(number)
    family = FAMILIES[number % len(FAMILIES)]
    fixture = rng.choice(fixture_names(family))
    case = apply(family, fixture, folder, rng, number=number)
    if family not in ("target", "model_arg") and rng.random() < 0.3:
        case.kwargs = target_args(rng, lambda: hostile_value(rng))
    return case
