"""kanarray's run-time switches, read from ``KANARRAY_*`` environment variables in one place.

This is the only module of kanarray that reads ``os.environ`` for them (see
docs/configuration.md for the table):

=============================  ====================  ==========================================
variable                       field                 switches
=============================  ====================  ==========================================
``KANARRAY_NUMBA``             ``numba``             compiled per-edge passes (NumPy, numba)
``KANARRAY_CUPY_ELEMENTWISE``  ``cupy_elementwise``  one-kernel Adam update and SiLU on CuPy
``KANARRAY_CUDA_GRAPHS``       ``cuda_graphs``       CUDA-graph replay of fit's steps on CuPy
``KANARRAY_NCCL``              ``nccl``              NCCL all-reduces of CuPy arrays under MPI
=============================  ====================  ==========================================

Every switch is on by default (where its dependency is present).  A value is one of
``1/true/yes/on`` or ``0/false/no/off`` (case and surrounding blanks ignored); an empty or
unset variable means the default; anything else raises ``ValueError`` when read.

When: the environment is read once, on the first call of ``current()`` (which happens when
the first kernels are built, i.e. when a model first computes), and cached for the process.
``reload()`` reads it again; ``override(**fields)`` sets fields for a ``with`` block.  Both
drop the cached kernel objects (``backends.clear_kernel_cache``), so the new settings apply
to every computation after the call; change them between fits, not during one.

Importing this module imports nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Config", "ENVIRONMENT", "LIMITS", "current", "reload", "override", "from_environ", "parse_size"]


@dataclass(frozen=True)
class Config:
    """The settings of the switches (all on by default).

    numba: NumPy models run the per-edge layer passes as compiled loops when numba is
        installed (``backends.numba_edges``); off: plain NumPy passes.
    cupy_elementwise: CuPy models use the one-kernel Adam update and SiLU
        (``backends.cupy.CupyKernels``); off: the array-API forms.
    cuda_graphs: ``fit`` on CuPy replays first-order steps as CUDA graphs
        (``backends.cuda_graph``); off: every step is evaluated eagerly.
    nccl: distributed CuPy all-reduces go through NCCL where it works (``distributed``);
        off: MPI through host memory.
    max_memory: the cap in bytes on the estimated memory of one operation
        (``kanarray.resources``); None: the machine's physical memory; ``math.inf``: no cap.
    """

    numba: bool = True
    cupy_elementwise: bool = True
    cuda_graphs: bool = True
    nccl: bool = True
    max_memory: float | None = None


#: field of ``Config`` -> the environment variable it is read from
ENVIRONMENT = {
    "numba": "KANARRAY_NUMBA",
    "cupy_elementwise": "KANARRAY_CUPY_ELEMENTWISE",
    "cuda_graphs": "KANARRAY_CUDA_GRAPHS",
    "nccl": "KANARRAY_NCCL",
}

#: the fields that are sizes rather than switches -> the environment variable each is read from
LIMITS = {"max_memory": "KANARRAY_MAX_MEMORY"}

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}
_UNLIMITED = ("none", "off", "unlimited", "inf")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

_current: Config | None = None


def _parse(variable: str, value: str, default: bool) -> bool:
    word = value.strip().lower()
    if word == "":
        return default
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(
        f"{variable}={value!r} is not a valid setting: expected one of "
        f"{'/'.join(_TRUE)} (on) or {'/'.join(_FALSE)} (off), case-insensitive, or empty for the default"
    )


def parse_size(variable: str, value: str) -> float | None:
    """A memory size as ``KANARRAY_MAX_MEMORY`` spells it -> bytes (a positive int), None (``auto``
    or empty: the physical memory) or ``math.inf`` (``none``/``off``/``unlimited``: no cap)."""
    word = value.strip()
    if word.lower() in ("", "auto"):
        return None
    if word.lower() in _UNLIMITED:
        return math.inf
    number = word.rstrip("kKmMgGtTiIbB ")
    unit = word[len(number):].strip().upper()
    try:
        size = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        size = math.nan
    if not (math.isfinite(size) and size >= 1):
        raise ValueError(
            f"{variable}={value!r} is not a valid size: expected bytes or a number with a unit K, M, G or T "
            f"(e.g. 8G), 'auto' or empty for the physical memory, or one of {'/'.join(_UNLIMITED)} for no cap"
        )
    return int(size)


def _check_size(name: str, value) -> None:
    """override()'s check of a size field: None, a number >= 1 or math.inf."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 1):
        raise TypeError(f"override({name}=...) needs a number of bytes >= 1, math.inf (no cap) or None (the "
                        f"physical memory), got {value!r}")


def from_environ(environ=None) -> Config:
    """The settings a mapping of environment variables gives (``os.environ`` when None), without
    caching them.  Raises ValueError for an invalid value, naming the variable."""
    env = os.environ if environ is None else environ
    defaults = Config()
    switches = {field: _parse(variable, env.get(variable, ""), getattr(defaults, field))
                for field, variable in ENVIRONMENT.items()}
    sizes = {field: parse_size(variable, env.get(variable, "")) for field, variable in LIMITS.items()}
    return Config(**switches, **sizes)


def current() -> Config:
    """The settings in force: read from the environment on the first call, then cached."""
    global _current
    if _current is None:
        _current = from_environ()
    return _current


def _clear_kernels() -> None:
    """Drop the cached kernel objects, which were built with the old settings (nothing to drop
    when ``kanarray.backends`` was never imported)."""
    backends = sys.modules.get("kanarray.backends")
    if backends is not None:
        backends.clear_kernel_cache()


def reload() -> Config:
    """Read the environment again (after a change of ``os.environ`` in this process) and make
    it the settings in force; returns them.  Cached kernels are dropped."""
    global _current
    _current = from_environ()
    _clear_kernels()
    return _current


@contextmanager
def override(**fields):
    """``with override(numba=False): ...``: these fields set (the others as they are) inside the
    block; the previous settings come back after it, even when it raises.  Yields the settings
    in force inside.  Cached kernels are dropped on entry and on exit.  Process-wide: not for
    use from several threads at once."""
    global _current
    known = {f.name for f in dataclasses.fields(Config)}
    for name, value in fields.items():
        if name not in known:
            raise TypeError(f"override() got an unknown field {name!r}: expected one of {sorted(known)}")
        if name in LIMITS:
            _check_size(name, value)
        elif not isinstance(value, bool):
            raise TypeError(f"override({name}=...) needs a bool, got {type(value).__name__}")
    saved = _current
    _current = dataclasses.replace(current(), **fields)
    _clear_kernels()
    try:
        yield _current
    finally:
        _current = saved
        _clear_kernels()
