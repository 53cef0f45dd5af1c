"""QuantizationArgs parsing mirrors compressed-tensors 0.17.0 validation."""

from __future__ import annotations

import pytest

from servecheck.quant.args import QuantArgs, QuantArgsError


def test_defaults_and_inference():
    assert QuantArgs.parse({}).strategy == "tensor"
    assert QuantArgs.parse({"group_size": 128}).strategy == "group"
    assert QuantArgs.parse({"group_size": -1}).strategy == "channel"
    assert QuantArgs.parse({"actorder": True, "group_size": 128}).actorder == "group"
    assert QuantArgs.parse({"actorder": "static", "group_size": 128}).actorder == "weight"
    assert QuantArgs.parse({"strategy": "block", "block_structure": "128x128"}).block_structure == (
        128,
        128,
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"strategy": "token"}, "static token"),
        ({"strategy": "group"}, "requires group_size"),
        ({"strategy": "channel", "group_size": 64}, "requires strategy"),
        ({"strategy": "block"}, "requires block structure"),
        ({"block_structure": [128, 128]}, "requires block strategy"),
        ({"strategy": "channel", "actorder": "group"}, "group activation ordering"),
        ({"strategy": "channel", "dynamic": True}, "must be used for dynamic"),
        ({"strategy": "tensor", "dynamic": "local"}, "local is only supported"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
        ({"type": "fixed"}, "not a valid QuantizationType"),
    ],
)
def test_invalid(data, message):
    with pytest.raises(QuantArgsError, match=message):
        QuantArgs.parse(data)
