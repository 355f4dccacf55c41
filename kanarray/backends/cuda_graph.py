"""One training evaluation (objective + gradients) recorded as a CUDA graph and replayed.

A step of a small KAN on CuPy is some sixty short kernels, and the host's time to launch them
(CuPy's per-call overhead plus kanarray's Python) is larger than the GPU's time to run them.
Recorded once with CUDA stream capture, the same kernels replay with one launch.  Imported
only where a model lives on CuPy (``training.fit`` on CuPy with a first-order optimizer).

What a replay reads and writes is fixed when it is recorded:

* the model's arrays (parameters, grids, masks, symbolic and node affine: whatever
  ``layer.state()`` holds) at their addresses then; optimizers update parameters in place, so a
  replay sees the new values.  A grid update or anything else that rebinds an array makes
  ``matches`` false: record anew;
* the batch arrays x, y given at recording (write a new batch into them in place);
* the outputs: one ``Evaluation`` whose arrays every replay overwrites.

Everything recorded allocates from a memory pool of its own, kept with the graph, so no
array allocated later by ordinary code shares memory with what a replay writes.  Recording
needs the evaluation to be free of host synchronisation (``fit`` evaluates once eagerly
before, which also compiles every kernel and fills the caches the evaluation reads) and of
cuBLAS calls, which CuPy refuses while a stream records: the layers' matrix products go
through ``CupyKernels.matmul``, which runs its own tiled kernel then.  The regularized
objective and the linear continuation still call cuBLAS, so ``fit`` records only the plain
objective.
"""

from __future__ import annotations

import cupy

from .. import config

__all__ = ["GraphedEvaluation", "graphs_enabled"]


def graphs_enabled() -> bool:
    """False when switched off (``kanarray.config.current().cuda_graphs``, from
    KANARRAY_CUDA_GRAPHS=0: to time or debug the eager path)."""
    return config.current().cuda_graphs


def _fingerprint(model, arrays) -> tuple:
    """(id, data pointer) of every array a replay reads: the layers' and the batch's."""
    found = [a for layer in model.layers for a in layer.state().values()] + list(arrays)
    return tuple((id(a), a.data.ptr) for a in found if isinstance(a, cupy.ndarray))


class GraphedEvaluation:
    """Records ``evaluate()`` when constructed; each call then replays it on the current stream.

    evaluate: a function of no arguments returning an ``Evaluation`` (typically
    ``objective.evaluate`` bound to the model, the batch, the loss, the regularization and the
    cache), already run once eagerly.  model, batch: whose arrays the graph reads (see the
    module docstring).  Raises ``cupy.cuda.runtime.CUDARuntimeError`` (or what ``evaluate``
    raises) when the evaluation cannot be recorded; nothing is changed then.
    """

    def __init__(self, evaluate, model, batch=()):
        self._model, self._batch = model, tuple(batch)  # kept alive: the graph reads them
        self._fingerprint = _fingerprint(model, self._batch)
        self._pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        with cupy.cuda.using_allocator(self._pool.malloc), stream:
            stream.begin_capture()
            try:
                result = evaluate()
            except BaseException:
                try:
                    stream.end_capture()
                except cupy.cuda.runtime.CUDARuntimeError:
                    pass  # the capture was already invalidated by what failed
                raise
            self._graph = stream.end_capture()
        self._result = result

    @staticmethod
    def synchronize() -> None:
        """Wait for the current stream (``fit`` times a replay against an eager evaluation)."""
        cupy.cuda.get_current_stream().synchronize()

    def matches(self, model, batch=()) -> bool:
        """Whether a replay still reads model's current arrays (and these batch arrays)."""
        return model is self._model and _fingerprint(model, tuple(batch)) == self._fingerprint

    def __call__(self):
        """Replay on the current stream; returns the recorded ``Evaluation``, whose arrays now
        hold this replay's values (and are overwritten by the next)."""
        self._graph.launch(cupy.cuda.get_current_stream())
        return self._result
