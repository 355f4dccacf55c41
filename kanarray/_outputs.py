"""The files a command writes, checked before it does any work: each can be written
(``_atomic.check_writable``: a regular file or none yet, in an existing folder where files can be
created) and none is one of the command's inputs or another of its outputs -- compared after
resolving links and ``..``, and as the same file on disk (hard links), so that
``kanarray export m.kan -o m.kan`` or ``kanarray fit d.csv --out x --onnx x`` is refused instead
of destroying a file."""

from __future__ import annotations

import os

from ._atomic import check_writable

__all__ = ["check_outputs"]


def _same_file(a: str, b: str) -> bool:
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(outputs: dict, inputs: dict) -> None:
    """``outputs`` and ``inputs``: {label (e.g. "--out", "DATA"): path or None (not given)}.
    ValueError naming the option and the file when an output cannot be written, is an input, or
    is another output."""
    given_out = [(label, os.fspath(path)) for label, path in outputs.items() if path]
    given_in = [(label, os.fspath(path)) for label, path in inputs.items() if path]
    for i, (label, path) in enumerate(given_out):
        for in_label, in_path in given_in:
            if _same_file(path, in_path):
                raise ValueError(f"{label} {path} is the input {in_label} ({in_path}): writing it would destroy "
                                 "the input; choose another output file")
        for other_label, other in given_out[:i]:
            if _same_file(path, other):
                raise ValueError(f"{label} {path} and {other_label} {other} are the same file: each output needs "
                                 "its own")
        try:
            check_writable(path)
        except ValueError as exc:
            raise ValueError(f"{label} {exc}") from None
