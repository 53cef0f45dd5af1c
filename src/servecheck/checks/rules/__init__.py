"""Importing this package registers every rule."""

from servecheck.checks.rules import checkpoint, hardware, quant_config, resolution  # noqa: F401
