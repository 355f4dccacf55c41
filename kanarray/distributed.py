"""Data-parallel training over MPI: the communicator ``fit`` uses to combine the ranks' shards.

Each rank holds a shard of the samples and a full copy of the model.  ``fit(..., comm=comm)``
makes every quantity that depends on the data global:

- the objective and its gradient: each rank weights its shard's mean loss by n_rank / N and
  the sums over ranks are taken in one all-reduce of [loss, every gradient] per evaluation;
- the regularization's statistics (the std of every edge activation and input over the
  batch): global means, then global centred sums of squares, two all-reduces per evaluation;
- grid updates: knots at quantiles of all samples (all-gathered, see ``gather_sorted``) and
  the coefficients refitted from all-reduced normal equations.

Everything the optimizers compute from these (L-BFGS's line search included) is then the same
arithmetic on the same numbers on every rank, so the ranks take identical steps; ``fit``
checks at its end that the parameters agree bit for bit.

No rank is left waiting in a collective when another fails:

- inputs and settings are checked on every rank inside one agreement (``Communicator.agreed``,
  ``agreed_call``) before any other collective: an error on any rank raises on every rank, and
  ranks whose models or settings differ (a different G, say) are refused on every rank;
- training and grid updates run their collectives guarded (``Communicator.guarded``): a rank
  that raises, or leaves early (a KeyboardInterrupt that ``fit`` catches), tells the others,
  which stop waiting in the collective they are in and stop too (``RankFailed``, or an
  interruption like Ctrl-C's).

The all-reduce of NumPy arrays is MPI's (``Allreduce``, sum); CuPy arrays go through NCCL
(CuPy's bindings) when it is available and through MPI via host memory otherwise.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

import numpy as np

from ._namespace import device_of, get_namespace, to_numpy

__all__ = ["Communicator", "RankFailed", "as_communicator", "agreed_call", "guarded_call", "shard_rows",
           "GRID_SAMPLE_CAP", "parameters_digest"]

#: grid updates gather at most this many samples in all (per input) to place the knots
GRID_SAMPLE_CAP = 2**16

_OPS = ("sum", "min", "max")
_ABORT_GRACE_S = 1.0  # seconds a failing rank waits, after printing, before MPI_Abort
# how a rank left a guarded block (the tag of the notice it sends every other rank)
_RETURNED, _INTERRUPTED, _FAILED = 1, 2, 3


class RankFailed(RuntimeError):
    """Raised on every other rank when one rank fails inside a guarded block (``fit``'s
    training, a grid update): the message names the rank and quotes its error."""


class _PeerInterrupted(KeyboardInterrupt):
    """Raised inside a collective that another rank will never join because it left training
    early without an error (a KeyboardInterrupt it caught): ``fit`` stops as on Ctrl-C."""


class Communicator:
    """A group of ranks training one model (wraps an mpi4py communicator).

    rank, size: this process's index and the number of ranks.
    """

    def __init__(self, mpi_comm):
        from mpi4py import MPI

        self._MPI = MPI
        self.mpi = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()
        self._nccl = None  # built on the first CuPy all-reduce

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- reductions ---------------------------------------------------------------------------
    def allreduce(self, a, op: str = "sum"):
        """Element-wise sum (or min, max) of ``a`` over the ranks; an array of a's namespace."""
        if op not in _OPS:
            raise ValueError(f"op must be one of {_OPS}, got {op!r}")
        module = type(a).__module__.split(".")[0]
        if module == "numpy":
            return self._mpi_allreduce(np.asarray(a), op)
        if module == "cupy":
            return self._cupy_allreduce(a, op)
        xp = get_namespace(a)
        out = self._mpi_allreduce(to_numpy(a), op)
        return xp.asarray(out, device=device_of(a))

    def _mpi_allreduce(self, a: np.ndarray, op: str) -> np.ndarray:
        send = np.ascontiguousarray(a)
        out = np.empty_like(send)
        self.mpi.Allreduce(send, out, op={"sum": self._MPI.SUM, "min": self._MPI.MIN, "max": self._MPI.MAX}[op])
        return out

    def _cupy_allreduce(self, a, op: str):
        import cupy

        a = cupy.ascontiguousarray(a)
        nccl = self._nccl_comm() if op == "sum" else None
        if nccl is None:
            return cupy.asarray(self._mpi_allreduce(cupy.asnumpy(a), op))
        from cupy.cuda import nccl as nccl_lib

        dtypes = {np.dtype(np.float64): nccl_lib.NCCL_FLOAT64, np.dtype(np.float32): nccl_lib.NCCL_FLOAT32,
                  np.dtype(np.int64): nccl_lib.NCCL_INT64}
        out = cupy.empty_like(a)
        stream = cupy.cuda.get_current_stream()
        nccl.allReduce(a.data.ptr, out.data.ptr, a.size, dtypes[np.dtype(a.dtype)], nccl_lib.NCCL_SUM, stream.ptr)
        self._wait_stream(stream)
        return out

    def _wait_stream(self, stream) -> None:
        stream.synchronize()

    def _nccl_comm(self):
        """CuPy's NCCL communicator over these ranks, or None (MPI through host memory is used
        then): without NCCL on any rank, with two ranks on one GPU (NCCL refuses that), when
        its set-up fails on any rank, or when switched off (``kanarray.config.current().nccl``,
        from KANARRAY_NCCL=0)."""
        if self._nccl is None:
            self._nccl = self._make_nccl() or False
        return self._nccl or None

    def _make_nccl(self):
        import cupy

        device = None
        from . import config

        if config.current().nccl:
            try:
                from cupy.cuda import nccl

                if getattr(nccl, "available", True):
                    device = cupy.cuda.Device().pci_bus_id
            except Exception:  # noqa: BLE001 - a CuPy without NCCL bindings
                device = None
        devices = self.mpi.allgather(device)
        if None in devices or len(set(devices)) < len(devices):
            return None
        from cupy.cuda import nccl

        uid = self.mpi.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
        try:
            made = nccl.NcclCommunicator(self.size, uid, self.rank)
        except Exception:  # noqa: BLE001
            made = None
        if not all(self.mpi.allgather(made is not None)):
            return None
        return made

    def allreduce_each(self, *arrays) -> tuple:
        """The sum over the ranks of each array (one namespace, any shapes), in one all-reduce of
        their concatenation."""
        xp = get_namespace(*arrays)
        flat = self.allreduce(xp.concat([xp.reshape(a, (-1,)) for a in arrays]))
        out, offset = [], 0
        for a in arrays:
            size = math.prod(a.shape)
            out.append(xp.reshape(flat[offset : offset + size], a.shape))
            offset += size
        return tuple(out)

    def allreduce_scalar(self, value: float, op: str = "sum") -> float:
        return float(self._mpi_allreduce(np.asarray([value], dtype=np.float64), op)[0])

    # -- gathers ------------------------------------------------------------------------------
    def allgather_rows(self, a: np.ndarray) -> np.ndarray:
        """(S_rank, n) NumPy arrays of every rank stacked in rank order: (sum S_rank, n)."""
        a = np.ascontiguousarray(a)
        counts = np.asarray(self.mpi.allgather(int(a.shape[0])), dtype=np.int64)
        row = int(np.prod(a.shape[1:], dtype=np.int64))
        out = np.empty((int(counts.sum()),) + a.shape[1:], dtype=a.dtype)
        self.mpi.Allgatherv(a, [out, (counts * row).tolist()])
        return out

    def gather_sorted(self, x, cap: int = GRID_SAMPLE_CAP):
        """Every rank's samples x (S_rank, n), sorted per column: (S', n) in x's namespace.

        S' is the global number of samples S when S <= cap, and the quantiles are those of
        all samples, exactly.  Beyond, each rank contributes about cap * S_rank / S evenly
        spaced order statistics of its sorted columns (its minimum and maximum included), so
        a quantile read off the result is off by at most about size * S / cap positions in
        the global order."""
        xp = get_namespace(x)
        local = np.sort(to_numpy(x), axis=0)
        total = int(self.allreduce_scalar(local.shape[0]))
        if total > cap and local.shape[0] > 1:
            count = max(2, math.ceil(cap * local.shape[0] / total))
            ids = np.unique(np.round(np.linspace(0, local.shape[0] - 1, count)).astype(np.int64))
            local = local[ids]
        merged = np.sort(self.allgather_rows(local), axis=0)
        return xp.asarray(merged, device=device_of(x))

    # -- failures -----------------------------------------------------------------------------
    def agreed(self, fn, key=None, what: str = "the settings"):
        """fn() on every rank, its result; if it raises on any rank (a KeyboardInterrupt too),
        every rank raises (``agree``).  key: None, or result -> bytes that must be the same on
        every rank (checked in the same all-gather; RuntimeError on every rank naming ``what``)."""
        try:
            result, error = fn(), None
            digest = None if key is None else key(result)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - re-raised by agree
            result, error, digest = None, exc, None
        digests = self.agree(error, digest)
        if key is not None:
            self._refuse_differing(digests, what)
        return result

    def agree(self, error: BaseException | None, digest: bytes | None = None) -> list:
        """Collective: raise on every rank if ``error`` is set on any.  The rank that failed
        re-raises its own error; the others raise a ValueError quoting it.  Returns every
        rank's ``digest`` (sent in the same all-gather)."""
        text = None if error is None else f"{type(error).__name__}: {error}"
        states = self.mpi.allgather((text, digest))
        if error is not None:
            raise error
        failed = [(r, t) for r, (t, _) in enumerate(states) if t is not None]
        if failed:
            r, t = failed[0]
            raise ValueError(f"rank {r} of {self.size} failed, so every rank stops: {t}")
        return [d for _, d in states]

    def _refuse_differing(self, digests: list, what: str) -> None:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        if differing:
            raise RuntimeError(f"{what} differ between rank 0 and rank(s) {differing}; every rank must hold the same "
                               f"model and call with the same settings")

    @contextlib.contextmanager
    def guarded(self, raised_together: tuple = ()):
        """A block whose collectives (through the communicator it yields, on a private
        duplicate of this one) wait for the other ranks and, at once, for notice of one leaving.

        A rank that leaves the block, normally or by an exception, sends every other rank a
        notice.  A rank waiting in a collective that the leaving rank never joined stops waiting
        and raises there: RankFailed if that rank failed, a KeyboardInterrupt (``fit`` then stops
        as on Ctrl-C) if it returned or was interrupted.  At the end of the block every rank
        learns how every other left (one all-gather), so that all leave the same way: a rank
        re-raises its own error; a rank without one raises RankFailed (naming the first rank that
        failed and quoting its error) if any failed, else a KeyboardInterrupt if any was
        interrupted, else returns.

        raised_together: exception classes every rank raises at the same point (``fit``'s
        TrainingDiverged), which leave no rank waiting.  With NCCL (CuPy ranks, one GPU each),
        where a waiting rank is inside a GPU all-reduce that no message reaches, a rank that
        fails otherwise ends every rank (``abort``), as does a rank that would have to leave
        such an all-reduce."""
        view = _Guarded(self)
        error = None
        try:
            yield view
        except BaseException as exc:  # noqa: BLE001 - handed to every rank, then re-raised
            error = exc
        view.finish(error, raised_together)

    def abort(self, error: BaseException) -> None:
        """Print ``error`` with its traceback, prefixed by this rank, and end every rank (a
        failure on one rank inside training would otherwise leave the others waiting)."""
        import traceback

        lines = traceback.format_exception(type(error), error, error.__traceback__)
        sys.stderr.write("".join(f"[kanarray rank {self.rank}] {line}" for line in "".join(lines).splitlines(True)))
        sys.stderr.flush()
        # The launcher forwards each rank's output asynchronously and MPI_Abort kills every
        # process at once, so without a pause the traceback can be lost on its way out (seen in CI).
        time.sleep(_ABORT_GRACE_S)
        self.mpi.Abort(1)

    def check_same(self, digest: bytes, what: str) -> None:
        """RuntimeError on every rank unless ``digest`` is the same on all of them."""
        self._refuse_differing(self.mpi.allgather(digest), what)


# (request, buffers, communicator) of collectives left unfinished: MPI may still write into the buffers
_ABANDONED: list = []


class _Guarded(Communicator):
    """The communicator of a ``Communicator.guarded`` block: the same ranks on a duplicate of
    the parent's MPI communicator, whose collectives are non-blocking.  A rank waits for one and
    for a notice at once (``MPI_Waitany``, so a waiting rank spins no more than in a blocking
    collective): the notices, point-to-point messages on the duplicate, are what ranks leaving
    the block send (the tag says how the rank left, the payload how many collectives it completed)."""

    def __init__(self, parent: Communicator):
        self._MPI = parent._MPI
        self.parent = parent
        self.mpi = parent.mpi.Dup()
        self.rank, self.size = parent.rank, parent.size
        self.completed = 0  # collectives this rank has completed in the block
        self.notices: dict = {}  # rank -> (how it left, collectives it completed)
        self.abandoned = False
        self._notice = np.empty(1, dtype=np.int64)
        self._listen()

    def _listen(self) -> None:
        """Post the receive of the next notice, while one is still to come from some rank (each
        rank sends every other one notice: no receive is left pending, none has to be cancelled)."""
        MPI = self._MPI
        pending = len(self.notices) < self.size - 1
        self._notice_request = self.mpi.Irecv(self._notice, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG) if pending else None

    def _take_notice(self, status) -> None:
        self.notices[status.Get_source()] = (status.Get_tag(), int(self._notice[0]))
        self._listen()

    def _nccl_comm(self):
        return self.parent._nccl_comm()

    # -- collectives, waited for together with the notices ---------------------------------
    def _mpi_allreduce(self, a: np.ndarray, op: str) -> np.ndarray:
        send = np.ascontiguousarray(a)
        out = np.empty_like(send)
        MPI = self._MPI
        self._wait(self.mpi.Iallreduce(send, out, op={"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op]),
                   (send, out))
        return out

    def allgather_rows(self, a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a)
        mine = np.asarray([a.shape[0]], dtype=np.int64)
        counts = np.empty(self.size, dtype=np.int64)
        self._wait(self.mpi.Iallgather(mine, counts), (mine, counts))
        row = int(np.prod(a.shape[1:], dtype=np.int64))
        out = np.empty((int(counts.sum()),) + a.shape[1:], dtype=a.dtype)
        self._wait(self.mpi.Iallgatherv(a, [out, (counts * row).tolist()]), (a, out))
        return out

    def _wait(self, request, buffers) -> None:
        index = self.completed + 1
        status = self._MPI.Status()
        while not self._left_before(index):
            if self._notice_request is None:  # every other rank has left, after joining this collective
                request.Wait()
            elif self._MPI.Request.Waitany([request, self._notice_request], status) != 0:
                self._take_notice(status)
                continue
            self.completed = index
            return
        self.abandoned = True
        _ABANDONED.append((request, buffers, self.mpi))
        raise self._stop_error(index)

    def _wait_stream(self, stream) -> None:
        index = self.completed + 1
        status = self._MPI.Status()
        while not stream.done:
            if self._notice_request is not None and self._notice_request.Test(status):
                self._take_notice(status)
            if self._left_before(index):
                self.abort(self._stop_error(index))  # no message reaches a rank inside the GPU all-reduce
        self.completed = index

    def _left_before(self, index: int) -> bool:
        """Whether a rank left the block before joining collective number ``index``."""
        return any(done < index for _, done in self.notices.values())

    def _stop_error(self, index: int) -> BaseException:
        r, (how, _) = min((r, n) for r, n in self.notices.items() if n[1] < index)
        if how == _FAILED:
            return RankFailed(f"rank {r} of {self.size} failed, so every rank stops")
        return _PeerInterrupted(f"rank {r} of {self.size} stopped early (interrupted), so every rank stops")

    # -- the end of the block ---------------------------------------------------------------
    def finish(self, error: BaseException | None, raised_together: tuple) -> None:
        """Tell every rank how this one left, learn how they did, and raise (see ``guarded``)."""
        own = error is not None and not isinstance(error, (RankFailed, _PeerInterrupted))
        if own and self.parent._nccl and not isinstance(error, (KeyboardInterrupt, *raised_together)):
            self.parent.abort(error)  # a rank may wait inside a GPU all-reduce
        how = _RETURNED if error is None else _INTERRUPTED if isinstance(error, KeyboardInterrupt) else _FAILED
        note = np.asarray([self.completed], dtype=np.int64)
        sends = [self.mpi.Isend(note, dest=r, tag=how) for r in range(self.size) if r != self.rank]
        text = f"{type(error).__name__}: {error}" if own and how == _FAILED else None
        states = self.parent.mpi.allgather((text, how, self.abandoned))
        status = self._MPI.Status()
        while self._notice_request is not None:  # every notice was sent before that all-gather
            self._notice_request.Wait(status)
            self._take_notice(status)
        self._MPI.Request.Waitall(sends)
        if not any(abandoned for _, _, abandoned in states):
            self.mpi.Free()  # else a collective some rank left unfinished still refers to it
        # every rank leaves the same way: all raise, or (nobody failed or was interrupted) all return
        if own:
            raise error
        failed = [(r, t) for r, (t, _, _) in enumerate(states) if t is not None]
        if failed:
            r, t = failed[0]
            raise RankFailed(f"rank {r} of {self.size} failed, so every rank stops: {t}") from None
        if error is not None:
            raise error
        interrupted = [r for r, (_, how, _) in enumerate(states) if how == _INTERRUPTED]
        if interrupted:
            raise KeyboardInterrupt(f"rank {interrupted[0]} of {self.size} was interrupted, so every rank stops")


_WRAPPED: dict[int, Communicator] = {}  # by id of the mpi4py communicator, which each entry keeps alive


def as_communicator(comm) -> Communicator | None:
    """None (one process) for None or a one-rank communicator; a ``Communicator`` for an
    mpi4py communicator (``mpi4py.MPI.COMM_WORLD``; the same one on every call, so that its
    NCCL communicator is built once) or a ``Communicator``."""
    if comm is None or isinstance(comm, Communicator):
        out = comm
    elif hasattr(comm, "Allreduce") and hasattr(comm, "Get_size"):
        out = _WRAPPED.get(id(comm))
        if out is None or out.mpi is not comm:
            out = _WRAPPED[id(comm)] = Communicator(comm)
    else:
        raise ValueError(f"comm must be None, an mpi4py communicator or a kanarray Communicator, got {comm!r}")
    return None if out is None or out.size == 1 else out


def agreed_call(comm, model, check, what: str):
    """check() -> (values, settings) on every rank; returns values.

    comm: a ``Communicator`` or None (one process: check() alone).  With comm, the ranks agree
    in one all-gather before any other collective: if check raises on any rank, every rank
    raises (``Communicator.agree``: a ValueError naming the rank and quoting its error on the
    others); if the settings (a tuple with a stable repr) or the model (its layout, dtype,
    backend and ``parameters_digest``) differ between ranks, every rank raises RuntimeError
    naming ``what`` and the ranks that differ."""
    if comm is None:
        return check()[0]

    def key(checked) -> bytes:
        import hashlib

        layout = (model.width, model.grid, model.k, model.extrapolate, model.dtype_name, model.backend)
        return hashlib.sha256(repr((layout, checked[1])).encode() + parameters_digest(model)).digest()

    return comm.agreed(check, key=key, what=f"the models or the {what} settings")[0]


def guarded_call(comm, fn):
    """fn(comm) in a ``Communicator.guarded`` block (fn(None) without comm): a rank failing in
    it stops every rank instead of leaving them waiting in a collective."""
    if comm is None:
        return fn(None)
    with comm.guarded() as ranks:
        return fn(ranks)


def shard_rows(n: int, comm) -> slice:
    """The contiguous block of rows 0..n-1 this rank holds: sizes differ by at most one."""
    comm = as_communicator(comm)
    if comm is None:
        return slice(0, n)
    base, extra = divmod(n, comm.size)
    start = comm.rank * base + min(comm.rank, extra)
    return slice(start, start + base + (comm.rank < extra))


def parameters_digest(model) -> bytes:
    """SHA-256 over every layer array's bytes (``KANLayer.state``: grids, masks, biases, symbolic affine
    and node stages included) and each node stage's layout (its additions and arities)."""
    # imported here, not with kanarray: loading OpenSSL at import was measured to leave glibc's
    # allocator returning large NumPy temporaries to the OS on every call (the toy training step
    # 0.92 ms instead of 0.65 ms in most processes; benchmarks/RESULTS.md, the refactor's section)
    import hashlib

    h = hashlib.sha256()
    for layer in model.layers:
        if layer.nodes is not None:
            h.update(repr((layer.nodes.n_add, layer.nodes.arities)).encode())
        for name, a in sorted(layer.state().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(to_numpy(a)).tobytes())
    return h.digest()
