"""Array operations per forward and training step, kanarray next to pykan: on a GPU each is a
kernel launch, and for the small cases the launches' fixed cost, not arithmetic, sets the time.

    python benchmarks/launch_count.py [--cases toy,mnist,fine,deep,wide] [--no-pykan] [--unfused]

Counted on the CPU, so it needs no GPU; the steps are bench_step.py's (full batch, MSE, Adam).

* kanarray runs on array_api_strict, where every operation of the array-API core is a Python
  call that can be counted (top-level calls only: an operation's own inner calls are not
  counted).  Views and metadata (reshape, permute_dims, basic indexing, astype to the same
  dtype, ...) launch nothing on CuPy and are counted apart.  The spline kernels, the SiLU base
  function and Adam's per-parameter updates (``silu`` and ``adam_update`` on CuPy) are
  counted as calls; the launches they make
  on CuPy are read off ``kanarray/backends/cupy.py`` (``CUPY_LAUNCHES``) for the contraction
  that ``choose_contraction`` picks for the shape.  The input checks' host synchronisations
  (``bool`` of a reduction, one per validated array) are among the operations.
* pykan runs on torch's CPU device under a dispatch mode that sees every ATen operation,
  autograd's backward and the optimizer included; Adam is set to torch's multi-tensor
  (foreach) form, which torch picks by default on CUDA.  View operations are counted apart.

The columns 'launches' give kanarray's estimate of CuPy kernel launches and pykan's non-view
ATen operations (about its CUDA kernels).  Prints a markdown table.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import ALL_CASES, data, pykan_ops  # noqa: E402

# launches of each CuPy kernel-object call (kanarray/backends/cupy.py), by contraction:
# spline_forward: locate_bases, the weight's transposed copy, spline_fwd (dense: + zeroed matrix,
# scatter_dense, and the GEMM instead of spline_fwd); spline_backward: zeroed gradient + coef_grad
# (dense: one GEMM) + spline_dx; edge_forward: locate_bases, weight copy, edge_fwd;
# edge_backward: zeroed gradient + coef_grad; adam_update: one launch, plus a copy of a gradient
# that is not C-contiguous (the spline weight's, a transposed view).
CUPY_LAUNCHES = {
    "sparse": {"spline_forward": 3, "spline_backward": 3, "edge_forward": 3, "edge_backward": 2, "dense_basis": 3,
               "local_bases": 1},
    "dense": {"spline_forward": 5, "spline_backward": 2, "edge_forward": 3, "edge_backward": 2, "dense_basis": 3,
              "local_bases": 1},
}
ADAM_LAUNCHES = 1
SILU_LAUNCHES = 1  # base.base_with_grad / base_grad with SiLU: the kernel ``silu``
VIEWS = {"reshape", "permute_dims", "expand_dims", "squeeze", "matrix_transpose", "broadcast_to", "__getitem__",
         "astype", "asarray", "isdtype", "finfo", "iinfo", "result_type", "can_cast", "__len__", "__bool__",
         "__float__", "__int__", "__index__"}
TORCH_VIEWS = {"view", "_unsafe_view", "expand", "t", "transpose", "permute", "unsqueeze", "squeeze", "slice", "select",
               "detach", "as_strided", "alias", "reshape", "_reshape_alias", "lift_fresh", "unbind", "split"}


class _Counter:
    """Counts top-level calls of array_api_strict's functions and array methods, and of the
    wrapped kernel-object and optimizer methods (whose inner operations are not counted)."""

    def __init__(self):
        self.depth = 0
        self.ops = collections.Counter()
        self.calls = collections.Counter()

    def wrap(self, f, name, table):
        @functools.wraps(f)
        def counted(*args, **kwargs):
            if self.depth == 0:
                table[name] += 1
            self.depth += 1
            try:
                return f(*args, **kwargs)
            finally:
                self.depth -= 1

        return counted

    def install(self, fused: bool = True):
        import array_api_strict as strict
        from array_api_strict._array_object import Array

        from kanarray.backends.generic import GenericKernels
        from kanarray.optim import Adam

        for name in dir(strict):
            f = getattr(strict, name)
            if not name.startswith("_") and callable(f) and not isinstance(f, type):
                setattr(strict, name, self.wrap(f, name, self.ops))
        skip = {"__init__", "__new__", "__repr__", "__str__", "__hash__", "__getattribute__", "__class__",
                "__init_subclass__", "__subclasshook__", "__dlpack__", "__dlpack_device__", "__array_namespace__",
                "__iter__", "__format__", "__reduce__", "__reduce_ex__", "__sizeof__", "__dir__", "__getstate__",
                "__setstate__"}  # __eq__ and __ne__ stay: element-wise comparisons here
        for name, f in list(vars(Array).items()):
            if name.startswith("__") and callable(f) and name not in skip:
                setattr(Array, name, self.wrap(f, name, self.ops))
        for name in CUPY_LAUNCHES["sparse"]:
            if hasattr(GenericKernels, name):
                setattr(GenericKernels, name, self.wrap(getattr(GenericKernels, name), name, self.calls))
        if not fused:  # Adam and SiLU as array operations, as before their kernels
            return
        counted_step = self.wrap(Adam.step, "adam.step", collections.Counter())  # hides the step's own ops

        def adam_step(opt, grads):  # one fused update per parameter on CuPy (no write-back copy there)
            if self.depth == 0:
                self.calls["adam_update"] += len(opt.params)
            return counted_step(opt, grads)

        Adam.step = adam_step
        import kanarray.layer as layer

        # SiLU is one kernel on CuPy: the kernels' base_with_grad and base_grad (before commit c3199b2,
        # the functions kanarray.layer imported from kanarray.base)
        owner = GenericKernels if hasattr(GenericKernels, "base_with_grad") else layer
        for name in ("base_with_grad", "base_grad"):
            setattr(owner, name, self.wrap(getattr(owner, name), "silu", self.calls))

    def measure(self, fn):
        self.ops.clear()
        self.calls.clear()
        fn()
        views = sum(n for name, n in self.ops.items() if name in VIEWS)
        return sum(self.ops.values()) - views, views, dict(self.calls)


def kanarray_counts(case, counter):
    """{kind: (array ops, views, kernel-object calls, estimated CuPy launches)}."""
    import kanarray as ka
    from kanarray.backends.cuda_source import choose_contraction
    from kanarray.optim import Adam

    model = ka.KAN(case["width"], grid=case["grid"], k=3, dtype=case["dtype"], backend="array_api_strict", seed=0)
    x, y = (model.xp.asarray(a) for a in data(case))
    opt = Adam(model.parameters(), lr=1e-4)

    def step():
        _, grads = model.value_and_grad(x, y)
        opt.step(grads)

    ops = {"forward": lambda: model(x), "step": step}
    for fn in ops.values():
        fn()  # warm-up: optimizer state, cached grids
    out = {}
    for kind, fn in ops.items():
        n_ops, views, calls = counter.measure(fn)
        layers = len(case["width"]) - 1
        per_layer = {name: n // layers for name, n in calls.items() if name not in ("adam_update", "silu")}
        launches = n_ops + calls.get("silu", 0) * SILU_LAUNCHES
        for n_in in case["width"][:-1]:  # each layer's contraction, as CupyKernels picks it
            mode = choose_contraction(case["batch"], n_in, case["grid"] + 3, 3, np.dtype(case["dtype"]).itemsize)
            launches += sum(CUPY_LAUNCHES[mode][name] * n for name, n in per_layer.items())
        if "adam_update" in calls:  # plus one copy per layer: the spline weight's gradient is a transposed view
            launches += calls["adam_update"] * ADAM_LAUNCHES + layers
        out[kind] = (n_ops, views, calls, launches)
    return out


def pykan_counts(case):
    """{kind: (non-view ATen ops, view ops)} for pykan on torch's CPU device."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, case["dtype"]))
    try:
        ops = pykan_ops(case)
        for cell in ops["step"].__closure__:
            if isinstance(cell.cell_contents, torch.optim.Adam):
                for group in cell.cell_contents.param_groups:
                    group["foreach"] = True  # as torch picks on CUDA
        out = {}
        for kind, fn in ops.items():
            fn()
            with Count() as mode:
                fn()
            views = sum(n for name, n in mode.ops.items() if name in TORCH_VIEWS)
            out[kind] = (sum(mode.ops.values()) - views, views)
        return out
    finally:
        torch.set_default_dtype(previous)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="toy,mnist,fine,deep", help=f"comma-separated, from {list(ALL_CASES)}")
    parser.add_argument("--no-pykan", action="store_true")
    parser.add_argument("--unfused", action="store_true",
                        help="count Adam and SiLU as their array operations (CuPy before adam_update and silu)")
    args = parser.parse_args(argv)
    names = args.cases.split(",")
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(ALL_CASES)}")
    counter = _Counter()
    counter.install(fused=not args.unfused)
    print("| case | shape | G | batch | kind | kanarray ops (views) | kernel calls | kanarray launches on CuPy "
          "| pykan ops (views) | ratio pykan / kanarray |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        case = ALL_CASES[name]
        ours = kanarray_counts(case, counter)
        theirs = None if args.no_pykan else pykan_counts(case)
        for kind in ("forward", "step"):
            n_ops, views, calls, launches = ours[kind]
            calls_text = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
            peer = ratio = "-"
            if theirs is not None:
                peer = f"{theirs[kind][0]} ({theirs[kind][1]})"
                ratio = f"{theirs[kind][0] / launches:.1f}x"
            print(f"| {name} | {case['width']} | {case['grid']} | {case['batch']} | {kind} | {n_ops} ({views}) "
                  f"| {calls_text} | {launches} | {peer} | {ratio} |")


if __name__ == "__main__":
    main()
