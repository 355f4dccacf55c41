"""Atomic file writes: everything kanarray writes (checkpoints, ONNX graphs, predictions,
plots) goes to a temporary file in the target's directory that is renamed over the target
only once complete, so a failure never leaves a partial file or destroys an old one.

- A symbolic link at the target is written through: the file it points to is replaced and the
  link is kept.  A target that exists but is not a regular file (a directory, FIFO, socket or
  device) is refused with a ValueError; nothing is written.
- Temporary files are named ``.kanarray-HOST-PID-RANDOM<suffix>.tmp`` (HOST: 8 hex digits of a
  hash of the host name).  Ctrl-C and any exception remove them; so does SIGTERM while the
  default SIGTERM action is in place (main thread only: a handler installed around the write
  removes the file, then the process terminates by SIGTERM as it would have).  SIGKILL cannot
  be caught, so each write first removes the stale temporary files of that pattern next to its
  target: those of this host whose process is gone, and any untouched for ``STALE_AFTER_S``.
- ``check_output_paths``, for the commands before they do any work: each output can be written
  (``check_writable``) and none is an input or another output -- compared after resolving links
  and ``..``, and as the same file on disk (hard links), so that ``kanarray export m.kan -o m.kan``
  is refused instead of destroying the checkpoint.

Why the pid and the age rather than an age alone: a file of this host whose pid is not a live
process can never be renamed by anyone, so it is removed at once (a save killed a minute ago
does not leave its file for an hour); a live writer's pid is alive, so its file is never
touched, however long the write takes (a reused pid only delays the removal).  Pids say nothing
about writers on other hosts that share the directory (NFS), nor about names without them
(earlier versions of kanarray wrote ``.kanarray-RANDOM.tmp``); for those only the age counts, and an
hour without a single write is no live save (were it one, its final rename would fail loudly
and the old target would stay intact).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import tempfile
import threading
import time

__all__ = ["STALE_AFTER_S", "atomic_write", "check_output_paths", "check_writable", "remove_stale_temporaries",
           "resolve_target"]

STALE_AFTER_S = 3600.0
_PREFIX = ".kanarray-"
_OURS = re.compile(r"\.kanarray-([0-9a-f]{8})-([0-9]+)-[A-Za-z0-9_]+(?:\.[A-Za-z0-9]+)*\.tmp\Z")
_LEGACY = re.compile(r"\.kanarray-[a-z0-9_]{8}(?:\.onnx|\.png)?\.tmp\Z")  # mkstemp names of earlier versions


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_prefix() -> str:
    return f"{_PREFIX}{_host_tag()}-{os.getpid()}-"


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


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def resolve_target(path) -> str:
    """The file a write to ``path`` replaces: ``path`` with every symbolic link resolved (a link
    is written through, not replaced).  ValueError when that exists and is not a regular file."""
    path = os.fspath(path)
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new file (check_writable looks at the folder)
        return target
    except OSError as exc:
        raise ValueError(f"{path}: cannot be written ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = next((text for test, text in _KINDS if test(mode)), "not a regular file")
        shown = path if target == os.path.abspath(path) else f"{path} (-> {target})"
        raise ValueError(f"{shown} is {kind}; kanarray writes only regular files and will not replace it")
    return target


def check_writable(path) -> str:
    """Check, before any work, that ``path`` can be written atomically: ``resolve_target``, its
    folder exists, and a temporary file can be created there.  Returns the resolved target;
    ValueError saying what is wrong otherwise."""
    path = os.fspath(path)
    target = resolve_target(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        problem = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"{path}: the folder {folder} {problem}")
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(), suffix=".probe.tmp", dir=folder)
    except OSError as exc:
        raise ValueError(f"{path}: cannot write in the folder {folder} ({exc.strerror})") from None
    os.close(fd)
    os.remove(probe)
    return target


def _same_file(a: str, b: str) -> bool:
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_output_paths(outputs: dict, inputs: dict) -> None:
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


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists here; None when that cannot be told (Windows, odd pids)."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except (OSError, OverflowError, ValueError):
        return None
    return True


def remove_stale_temporaries(directory, *, now: float | None = None) -> list[str]:
    """Remove the temporary files of kanarray's naming in ``directory`` that no live save can
    still rename (see the module docstring); returns their paths.  Errors are ignored: the
    clean-up must never stop a save."""
    now = time.time() if now is None else now
    host = None
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PREFIX):
            continue
        ours, legacy = _OURS.match(entry.name), _LEGACY.match(entry.name)
        if not (ours or legacy):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stale = now - entry.stat(follow_symlinks=False).st_mtime >= STALE_AFTER_S
            if not stale and ours:
                host = _host_tag() if host is None else host
                stale = ours.group(1) == host and _pid_alive(int(ours.group(2))) is False
            if stale:
                os.remove(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


_IN_PROGRESS: set = set()  # temporary files of the writes now running in this process, any thread


def _terminate(signum, frame) -> None:
    """The SIGTERM handler during writes: remove every temporary file in progress, then terminate by
    the signal, as the default action would have."""
    for path in list(_IN_PROGRESS):
        with contextlib.suppress(OSError):
            os.remove(path)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _removed_on_sigterm():
    """While active, a SIGTERM removes the temporary files in ``_IN_PROGRESS``, then terminates the
    process by SIGTERM.  Installed only in the main thread and only over the default action: a
    handler of the program's own, or an ignored SIGTERM, is left as it is (a handler that raises
    unwinds through ``atomic_write``, which then removes the file).  A write within a write, or in
    another thread while the main thread writes, is covered by the handler already there.  The
    previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_write(path, suffix: str = ".tmp"):
    """Yield a binary file handle; on leaving without error the data is flushed, synced and
    renamed to ``path`` (through a symbolic link, to the file it names); on any error (Ctrl-C
    and SIGTERM included) the temporary file is removed.  ``suffix`` ends the temporary file's
    name (".tmp" is appended unless it ends so).  ValueError when ``path`` exists and is not a
    regular file."""
    target = resolve_target(path)
    directory = os.path.dirname(target)
    if not suffix.endswith(".tmp"):
        suffix += ".tmp"
    remove_stale_temporaries(directory)
    with _removed_on_sigterm():
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(), suffix=suffix, dir=directory)
        _IN_PROGRESS.add(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.chmod(tmp, _mode_for(target))  # mkstemp's 0600 would make saved files private to the writer
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        finally:
            _IN_PROGRESS.discard(tmp)
    _sync_directory(directory)
