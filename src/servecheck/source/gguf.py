"""Read a GGUF file's header (metadata and tensor infos, never tensor data) into a Checkpoint.

A GGUF file (llama.cpp's format; vLLM 0.10-0.23 load it with ``--quantization gguf`` chosen
for them) starts with "GGUF", a version, the tensor and metadata counts, the metadata
key/value pairs and one info per tensor (name, dims, GGML type, offset). The reader is
bounded: every count and length is checked against what the file can hold before anything
is allocated, long arrays (the tokenizer's vocabulary) are skipped and only counted, and any
malformed header is an InputError that names the file.

The config vLLM builds from it is transformers' (``AutoConfig.from_pretrained(dir,
gguf_file=name)``: integrations/ggml.py GGUF_CONFIG_MAPPING, modeling_gguf_pytorch_utils.py
load_gguf_checkpoint) with the architecture vLLM 0.23 transformers_utils/config.py get_config
sets; knowledge/gguf.toml holds the tables (scripts/extract_gguf.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from servecheck.errors import InputError
from servecheck.knowledge import load_toml

MAGIC = b"GGUF"
MAX_STRING = 1 << 20  # metadata strings (chat templates are tens of KiB)
MAX_COUNT = 1 << 24  # tensors, metadata pairs, array elements
KEEP_ARRAY = 64  # arrays longer than this are counted, not kept
# GGUF value types (gguf.md): struct format of each scalar type
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q"}
_SCALARS[12] = "d"
_STRING, _ARRAY = 8, 9
# transformers modeling_gguf_pytorch_utils.py load_gguf_checkpoint: llama.cpp architecture
# names transformers renames before looking them up
RENAMES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss"}
RENAMES["minimax-m2"] = "minimax_m2"


@dataclass(frozen=True)
class GgufTensor:
    name: str
    dims: tuple[int, ...]  # GGML order: dims[0] is the contiguous (input) dimension
    type_id: int
    offset: int

    @property
    def elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        row = type_by_id().get(self.type_id)
        return row[0] if row else f"type {self.type_id}"

    @property
    def nbytes(self) -> int | None:
        row = type_by_id().get(self.type_id)
        if row is None:
            return None
        _, block, size = row
        return -(-self.elements // block) * size


@dataclass(frozen=True)
class GgufHeader:
    path: Path
    version: int
    metadata: dict[str, Any]  # long arrays as ("array", count)
    tensors: tuple[GgufTensor, ...]
    file_size: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def tensor(self, name: str) -> GgufTensor | None:
        return next((t for t in self.tensors if t.name == name), None)


@cache
def table() -> dict[str, Any]:
    return load_toml("gguf.toml")


@cache
def type_by_id() -> dict[int, tuple[str, int, int]]:
    return {row["id"]: (name, row["block"], row["bytes"]) for name, row in table()["type"].items()}


def is_gguf(path: Path) -> bool:
    """vLLM 0.23 gguf_utils.py check_gguf_file: a file named *.gguf, or one starting GGUF."""
    if not path.is_file():
        return False
    if path.suffix == ".gguf":
        return True
    try:
        with path.open("rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


class _Reader:
    def __init__(self, f: BinaryIO, size: int, where: str):
        self.f, self.size, self.where = f, size, where

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.where} is not a readable GGUF file: {what}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.f.tell() + n > self.size:
            raise self.fail("the header runs past the end of the file")
        return self.f.read(n)

    def scalar(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, what: str, least: int = 1) -> int:
        n = self.scalar("Q")
        if n > MAX_COUNT or n * least > self.size - self.f.tell():
            raise self.fail(f"{what} count {n} is larger than the file can hold")
        return n

    def string(self) -> str:
        n = self.scalar("Q")
        if n > MAX_STRING:
            raise self.fail(f"a {n}-byte string is longer than a header string can be")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.scalar("I")
            n = self.count("array element")
            if n > KEEP_ARRAY:
                self.skip(etype, n)
                return ("array", n)
            return [self.value(etype) for _ in range(n)]
        raise self.fail(f"unknown metadata value type {vtype}")

    def skip(self, etype: int, n: int) -> None:
        if etype in _SCALARS:
            self.take(n * struct.calcsize(_SCALARS[etype]))
        elif etype == _STRING:
            for _ in range(n):
                length = self.scalar("Q")
                if length > MAX_STRING:
                    raise self.fail("an array string is longer than a header string can be")
                self.f.seek(length, 1)
        else:
            for _ in range(n):
                self.value(etype)


def read_header(path: Path) -> GgufHeader:
    """The metadata and tensor infos of one GGUF file (reads the header only)."""
    where = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            r = _Reader(f, size, where)
            if r.take(4) != MAGIC:
                raise r.fail("it does not start with 'GGUF'")
            version = r.scalar("I")
            if version not in (2, 3):
                raise r.fail(f"GGUF version {version} (readers handle versions 2 and 3)")
            n_tensors, n_kv = r.count("tensor", 24), r.count("metadata pair", 12)
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                metadata[key] = r.value(r.scalar("I"))
            tensors = []
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.scalar("I")
                if n_dims > 8:
                    raise r.fail(f"tensor {name} has {n_dims} dimensions")
                dims = tuple(r.scalar("Q") for _ in range(n_dims))
                tensors.append(GgufTensor(name, dims, r.scalar("I"), r.scalar("Q")))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return GgufHeader(path, version, metadata, tuple(tensors), size)


def gguf_config(header: GgufHeader) -> dict[str, Any]:
    """The config transformers builds from the metadata, with vLLM's architecture."""
    arch = header.architecture
    name = RENAMES.get(arch, arch)
    row = table()["arch"].get(name)
    if row is None:
        # transformers modeling_gguf_pytorch_utils.py load_gguf_checkpoint
        raise InputError(
            f"{header.path.name}: GGUF model with architecture {arch} is not supported yet."
        )
    config: dict[str, Any] = {"model_type": row["model_type"]}
    for key, field in row["keys"].items():
        value = header.metadata.get(f"{arch}.{key}")
        if value is not None and not isinstance(value, tuple):
            config[field] = value
    if "vocab_size" not in config:
        embed = header.tensor("token_embd.weight")
        tokens = header.metadata.get("tokenizer.ggml.tokens")
        if embed is not None and len(embed.dims) == 2:
            config["vocab_size"] = embed.dims[1]
        elif isinstance(tokens, tuple):
            config["vocab_size"] = tokens[1]
    # load_gguf_checkpoint: tied unless the file has output.weight (falcon, bloom: always)
    config["tie_word_embeddings"] = header.tensor("output.weight") is None or arch in (
        "falcon",
        "bloom",
    )
    if row["causal_lm"]:
        config["architectures"] = [row["causal_lm"]]
    config["quantization_config"] = {"quant_method": "gguf"}
    return config
