"""Bounded, header-only reading of safetensors files.

A safetensors file is `<u64 little-endian header length><JSON header><data>`. We read the
first 8 bytes and the header, never the data. The header length is capped: the reference
implementation refuses headers over 100 MB, and so do we (hostile files can claim 2**64).
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from servecheck.errors import InputError

# NOTE: same cap as the safetensors crate (MAX_HEADER_SIZE = 100_000_000).
MAX_HEADER_BYTES = 100_000_000

# Bits per element of every dtype the safetensors format names.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


class TensorInfo(NamedTuple):
    """One tensor as the header describes it (a NamedTuple: tens of thousands are made)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    shard: str  # file name of the shard holding it

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class HeaderTruncated(InputError):
    """The file ends before the header its first 8 bytes announce."""


@dataclass(frozen=True, slots=True)
class ShardHeader:
    """The parsed header of one safetensors file."""

    path: Path
    header_bytes: int
    file_size: int
    data_bytes_declared: int  # end of the last tensor's data region
    metadata: dict[str, str]
    tensors: tuple[TensorInfo, ...]

    @property
    def is_truncated(self) -> bool:
        """True when the file is shorter than the data its header describes."""
        return self.file_size < 8 + self.header_bytes + self.data_bytes_declared


def read_header(path: str | os.PathLike[str]) -> ShardHeader:
    """Read and validate one safetensors header. Raises InputError on anything malformed."""
    path = Path(path)
    try:
        # A regular file only: a FIFO (opening it would wait forever) or a link to /dev/zero
        # is refused before it is opened.
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path.name}: not a file (a folder, device or pipe)")
        file_size = info.st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{path.name}: not a safetensors file ({file_size} bytes long)")
            header_len = check_header_length(path.name, head, file_size)
            raw = f.read(header_len)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_header_bytes(path, raw, file_size)


def check_header_length(name: str, head: bytes, file_size: int) -> int:
    """The header length the first 8 bytes announce, refused when over the cap or longer than
    the file (HeaderTruncated). `file_size` is the whole file's size in bytes."""
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > MAX_HEADER_BYTES:
        raise InputError(
            f"{name}: header claims {header_len:,} bytes, over the "
            f"{MAX_HEADER_BYTES:,}-byte limit; the file is corrupt or not safetensors"
        )
    if header_len > file_size - 8:
        raise HeaderTruncated(
            f"{name}: header is truncated (declares {header_len:,} bytes, the file "
            f"has {max(file_size - 8, 0):,} after the length prefix); re-download it"
        )
    return header_len


def parse_header_bytes(path: Path, raw: bytes, file_size: int) -> ShardHeader:
    """Parse a header's JSON bytes (without the 8-byte length prefix) read from `path`, a local
    file or the name of a remote one."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path.name}: header is not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path.name}: header is not valid JSON (nested too deep)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InputError(f"{path.name}: header holds a number too long to be real") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path.name}: header is not a JSON object")
    if b"\\ud" in raw or b"\\uD" in raw:  # escapes that may leave lone surrogates
        _check_names(path.name, header)
    return _parse_header(path, header, len(raw), file_size)


def _check_names(shard: str, header: dict) -> None:
    for name in header:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{shard}: tensor name {name!r} is not valid text") from None


def _parse_header(path: Path, header: dict, header_len: int, file_size: int) -> ShardHeader:
    metadata = header.pop("__metadata__", None) or {}
    # The safetensors crate reads __metadata__ as a map of strings to strings.
    if not isinstance(metadata, dict) or not all(type(v) is str for v in metadata.values()):
        raise InputError(f"{path.name}: __metadata__ is not an object of strings")
    shard = path.name
    tensors: list[TensorInfo] = []
    append = tensors.append
    bits_of = DTYPE_BITS.get
    data_end = 0
    # Fast path: the usual well-formed entry, checked with as few operations as possible;
    # anything unusual goes through _parse_entry, which names the exact problem.
    for name, entry in header.items():
        try:
            shape = entry["shape"]
            begin, end = entry["data_offsets"]
            bits = bits_of(entry["dtype"])
            numel = _prod(shape)
            ok = (
                bits is not None
                and type(shape) is list
                and type(numel) is int
                and type(begin) is int
                and type(end) is int
                and 0 <= begin <= end
                and end - begin == (numel * bits + 7) // 8
                and numel > 0
                and min(shape) >= 0
            )
        except (TypeError, ValueError, KeyError):
            ok = False
        if not ok:
            append(_parse_entry(shard, name, entry))  # raises with the reason
            continue
        append(_new_tuple(TensorInfo, (name, entry["dtype"], tuple(shape), end - begin, shard)))
        if end > data_end:
            data_end = end
    if data_end >= _MAX_OFFSET:
        raise InputError(f"{path.name}: data offsets reach {data_end:,} bytes; not a real file")
    return ShardHeader(
        path=path,
        header_bytes=header_len,
        file_size=file_size,
        data_bytes_declared=data_end,
        metadata={str(k): str(v) for k, v in metadata.items()},
        tensors=tuple(tensors),
    )


# The safetensors crate reads offsets and dimensions as u64 and refuses a size in bits that
# overflows it; no offset reaches 2**61 bytes unless some size in bits does.
_MAX_OFFSET = 2**61
_MAX_DIM = 2**64
# tuple.__new__ skips NamedTuple's Python-level __new__: twice as fast for ~100k tensors.
_new_tuple = tuple.__new__
_prod = math.prod


def _parse_entry(shard: str, name: str, entry: object) -> TensorInfo:
    """Validate one header entry. Written for speed: this runs once per tensor."""
    if type(entry) is not dict:
        raise InputError(f"{shard}: tensor {name!r}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None
    if bits is None:
        raise InputError(f"{shard}: tensor {name!r}: unknown dtype {dtype!r}")
    if type(shape) is not list:
        raise InputError(f"{shard}: tensor {name!r}: shape {shape!r} is not a list")
    try:
        numel = _prod(shape)  # C-level; a non-number raises TypeError
    except TypeError:
        numel = None
    if (
        type(numel) is not int
        or any(type(x) is not int for x in shape)
        or (shape and (min(shape) < 0 or max(shape) >= _MAX_DIM))
    ):
        raise InputError(
            f"{shard}: tensor {name!r}: shape {shape!r} is not a list of non-negative integers"
        )
    try:
        begin, end = offsets  # type: ignore[misc]
    except (TypeError, ValueError):
        begin = end = None
    if type(begin) is not int or type(end) is not int or begin < 0 or end < begin:
        raise InputError(f"{shard}: tensor {name!r}: data_offsets {offsets!r} are invalid")
    nbytes = end - begin
    expected = (numel * bits + 7) // 8
    if nbytes != expected:
        raise InputError(
            f"{shard}: tensor {name!r}: data_offsets span {nbytes} bytes but {dtype}{shape} needs "
            f"{expected}"
        )
    return _new_tuple(TensorInfo, (name, dtype, tuple(shape), nbytes, shard))
