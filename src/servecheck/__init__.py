"""servecheck: predict whether a checkpoint will load, fit and run under vLLM."""

__version__ = "0.1.0"
