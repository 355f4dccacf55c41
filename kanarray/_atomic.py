"""Atomic file writes: everything kanarray writes (checkpoints, ONNX graphs, predictions,
plots) goes to a temporary file in the target's directory that is renamed over the target
only once complete, so a failure never leaves a partial file or destroys an old one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

__all__ = ["atomic_write"]


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux); the
    fallback sets and restores it, which is racy only against threads creating files meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: str) -> int:
    """An overwritten file keeps its permissions; a new one gets the usual 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, suffix: str = ".tmp"):
    """Yield a binary file handle; on leaving without error the data is flushed, synced and
    renamed to ``path``; on any error (Ctrl-C included) the temporary file is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kanarray-", suffix=suffix, dir=directory)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp's 0600 would make saved files private to the writer
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _sync_directory(directory)
