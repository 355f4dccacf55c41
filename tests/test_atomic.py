"""kanarray._atomic: atomic writes through links, refusal of special files, and no temporary
file left behind by SIGTERM or (after the next save) by SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from kanarray import _atomic
from kanarray._atomic import STALE_AFTER_S, atomic_write, check_writable, remove_stale_temporaries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals, FIFOs and pids as on POSIX")


def temporaries(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(".kanarray-"))


def write(path, data: bytes, suffix: str = ".tmp") -> None:
    with atomic_write(path, suffix) as fh:
        fh.write(data)


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "m.kan"
    write(target, b"old")
    os.chmod(target, 0o640)
    write(target, b"new", ".npy")  # a suffix not ending in .tmp gets one
    assert target.read_bytes() == b"new" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert temporaries(tmp_path) == []
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"partial")
        raise RuntimeError("fails midway")
    assert target.read_bytes() == b"new" and temporaries(tmp_path) == []


@posix_only
def test_a_symbolic_link_is_written_through_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "m.kan"
    real.write_bytes(b"old")
    link = tmp_path / "link.kan"
    link.symlink_to(real)
    write(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    assert temporaries(tmp_path) == [] and temporaries(tmp_path / "real") == []
    dangling = tmp_path / "dangling.kan"
    dangling.symlink_to(tmp_path / "real" / "new.kan")
    write(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "new.kan").read_bytes() == b"made"


@posix_only
def test_special_files_are_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    link_to_fifo = tmp_path / "to-pipe.npy"
    link_to_fifo.symlink_to(fifo)
    targets = [(fifo, r"a FIFO \(named pipe\)"), (folder, "a directory"), (link_to_fifo, r"a FIFO \(named pipe\)")]
    if os.geteuid() == 0:  # a device node of our own, in tmp_path
        device = tmp_path / "null"
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        targets.append((device, "a character device"))
    for target, kind in targets:
        with pytest.raises(ValueError, match=f"is {kind}; kanarray writes only regular files"):
            write(target, b"x")
        with pytest.raises(ValueError, match=f"is {kind}"):
            check_writable(target)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and folder.is_dir() and os.listdir(folder) == []
    assert temporaries(tmp_path) == []


def test_check_writable_names_a_missing_or_unwritable_folder(tmp_path):
    with pytest.raises(ValueError, match="the folder .*nowhere does not exist"):
        check_writable(tmp_path / "nowhere" / "m.kan")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="the folder .*file is not a directory"):
        check_writable(tmp_path / "file" / "m.kan")  # a file where the folder should be
    if os.path.isdir("/proc/self"):
        with pytest.raises(ValueError, match="cannot write in the folder /proc"):
            check_writable("/proc/m.kan")
    assert check_writable(tmp_path / "m.kan") == os.path.realpath(tmp_path / "m.kan")
    assert temporaries(tmp_path) == []


# three writes in progress when the signal comes: one in a worker thread, one within another
_SLOW_SAVE = """
import sys, threading, time
from kanarray._atomic import atomic_write

def slow_write(path, started):
    with atomic_write(path) as fh:
        fh.write(b"partial" * 1000)
        fh.flush()
        started.set()
        time.sleep(60)

started = threading.Event()
threading.Thread(target=slow_write, args=(sys.argv[1] + ".thread", started), daemon=True).start()
started.wait()
with atomic_write(sys.argv[1]) as outer:
    outer.write(b"outer")
    slow_write(sys.argv[1] + ".inner", threading.Event())
"""


def _interrupted_save(target, signum) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(target)], env=env)
    try:
        deadline = time.monotonic() + 30
        while len(temporaries(os.path.dirname(target))) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(temporaries(os.path.dirname(target))) == 3
        time.sleep(0.2)  # the inner write's data is in its file: the process sleeps inside three writes
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


@posix_only
def test_sigkill_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "m.kan"
    target.write_bytes(b"old")
    proc = _interrupted_save(target, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    left = temporaries(tmp_path)
    assert len(left) == 3 and all(name.endswith(".tmp") for name in left)
    assert target.read_bytes() == b"old"
    write(target, b"new")  # the next save, right away: the writer's pid is gone
    assert temporaries(tmp_path) == [] and target.read_bytes() == b"new"


@posix_only
def test_sigterm_during_a_save_leaves_no_temporary_and_terminates(tmp_path):
    target = tmp_path / "m.kan"
    target.write_bytes(b"old")
    proc = _interrupted_save(target, signal.SIGTERM)
    assert proc.returncode == -signal.SIGTERM  # terminated by the signal, as without the handler
    assert temporaries(tmp_path) == [] and target.read_bytes() == b"old"


@posix_only
def test_the_sigterm_handler_lives_only_around_the_write(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with atomic_write(tmp_path / "a") as fh:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        fh.write(b"a")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, own)
    try:
        # the program's handler runs; its exception removes the file
        with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "b") as fh:
            assert signal.getsignal(signal.SIGTERM) is own
            fh.write(b"b")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert temporaries(tmp_path) == [] and not (tmp_path / "b").exists()


@posix_only
def test_stale_clean_up_spares_live_writers_and_foreign_names(tmp_path):
    host = _atomic._host_tag()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another live writer
    names = {
        f".kanarray-{host}-{os.getpid()}-live0001.tmp": False,  # a live writer here (this process)
        f".kanarray-{host}-{other.pid}-live0003.npy.tmp": False,
        f".kanarray-{host}-{dead.pid}-dead0001.onnx.tmp": True,  # its process is gone
        ".kanarray-0badc0de-12345-other001.tmp": False,  # another host's writer: only the age counts
        ".kanarray-abcd1234.tmp": False,  # earlier versions' names: only the age counts
        ".kanarray-notes.txt": False,  # not our pattern
        "kanarray-x-1-y.tmp": False,
    }
    old = {".kanarray-0badc0de-12345-other002.tmp": True, ".kanarray-abcd5678.png.tmp": True,
           ".kanarray-old-notes.txt": False, f".kanarray-{host}-{os.getpid()}-live0002.tmp": True}
    for name in [*names, *old]:
        (tmp_path / name).write_bytes(b"x")
    long_ago = time.time() - STALE_AFTER_S - 60
    for name in old:
        os.utime(tmp_path / name, (long_ago, long_ago))
    (tmp_path / ".kanarray-dir-1-x.tmp").mkdir()  # not a regular file: left alone
    try:
        removed = remove_stale_temporaries(tmp_path)
    finally:
        other.kill()
        other.wait()
    expected = sorted(name for name, stale in {**names, **old}.items() if stale)
    assert sorted(os.path.basename(p) for p in removed) == expected
    assert sorted(set(names) | set(old) | {".kanarray-dir-1-x.tmp"}) == sorted(os.listdir(tmp_path) + expected)
