"""Header reading: real fixture headers, and hostile or truncated files."""

from __future__ import annotations

import json
import struct

import pytest

from servecheck.errors import InputError
from servecheck.source.safetensors import MAX_HEADER_BYTES, read_header


def test_reads_real_header(fixture_path):
    shard = read_header(fixture_path("llama-FP8_DYNAMIC") / "model.safetensors")
    names = {t.name: t for t in shard.tensors}
    w = names["model.layers.0.self_attn.q_proj.weight"]
    assert w.dtype == "F8_E4M3"
    assert w.nbytes == w.numel  # one byte per element
    assert names["model.layers.0.self_attn.q_proj.weight_scale"].shape[1] == 1
    assert not shard.is_truncated


def _write(path, header_bytes: bytes, length: int | None = None, data: bytes = b"") -> None:
    n = len(header_bytes) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + header_bytes + data)


def test_header_length_over_cap_is_refused(tmp_path):
    p = tmp_path / "evil.safetensors"
    _write(p, b"{}", length=MAX_HEADER_BYTES + 1)
    with pytest.raises(InputError, match="over the"):
        read_header(p)


def test_declared_header_longer_than_file(tmp_path):
    p = tmp_path / "short.safetensors"
    _write(p, b'{"a":', length=4096)
    with pytest.raises(InputError, match="truncated"):
        read_header(p)


def test_garbage_json(tmp_path):
    p = tmp_path / "junk.safetensors"
    _write(p, b"\xff\xfe not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_header(p)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}, "unknown dtype"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "non-negative"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "needs 8"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}, "invalid"),
    ],
)
def test_malformed_entries(tmp_path, entry, message):
    p = tmp_path / "bad.safetensors"
    _write(p, json.dumps({"t": entry}).encode(), data=b"\0" * 8)
    with pytest.raises(InputError, match=message):
        read_header(p)


def test_short_data_region_is_reported_not_raised(tmp_path):
    p = tmp_path / "cut.safetensors"
    _write(
        p,
        json.dumps({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode(),
        data=b"\0" * 4,
    )
    shard = read_header(p)
    assert shard.is_truncated


def test_never_reads_weight_data(tmp_path, monkeypatch):
    """Only the 8-byte prefix and the header are read, whatever the file size."""
    p = tmp_path / "big.safetensors"
    header = json.dumps({"t": {"dtype": "U8", "shape": [1 << 20], "data_offsets": [0, 1 << 20]}})
    _write(p, header.encode(), data=b"\0" * (1 << 20))
    reads: list[int] = []
    real_open = type(p).open

    def spy_open(self, *a, **k):
        f = real_open(self, *a, **k)
        real_read = f.read

        def read(n=-1):
            reads.append(n)
            return real_read(n)

        f.read = read
        return f

    monkeypatch.setattr(type(p), "open", spy_open)
    read_header(p)
    assert reads == [8, len(header)]
