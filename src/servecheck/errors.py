"""Errors that mean "bad input or usage": the CLI turns them into one sentence and exit code 2."""


class InputError(Exception):
    """The input cannot be read or understood (missing file, malformed JSON, corrupt header)."""
