"""Atomic file writes: everything kanarray writes (checkpoints, ONNX graphs, predictions,
plots) goes to a temporary file in the target's directory that is renamed over the target
only once complete, so a failure never leaves a partial file or destroys an old one."""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_write"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, suffix: str = ".tmp"):
    """Yield a binary file handle; on leaving without error the data is flushed, synced and
    renamed to ``path``; on any error (Ctrl-C included) the temporary file is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kanarray-", suffix=suffix, dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make saved files private to the writer
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
