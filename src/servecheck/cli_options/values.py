"""Option values checked as argparse reads them."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1")
    return value


def gpu_count(text: str) -> int:
    """A number of GPUs or nodes: 1 to MAX_GPUS (planning enumerates every layout of them)."""
    from servecheck.core import MAX_GPUS

    value = positive_int(text)
    if value > MAX_GPUS:
        raise argparse.ArgumentTypeError(f"{text} is more than servecheck plans ({MAX_GPUS})")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.01 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0.01 and 1")
    return value
