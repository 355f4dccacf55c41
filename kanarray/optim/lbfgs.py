"""L-BFGS with a strong-Wolfe line search (Nocedal & Wright, Algorithms 7.4, 3.5 and 3.6).

The parameters are handled as one flat vector.  The defaults follow the usual deep-learning
convention (one ``step`` runs up to ``max_iter`` iterations, as torch.optim.LBFGS); pykan's
``fit`` uses ``history_size=10, max_iter=20, tolerance_grad=tolerance_change=tolerance_ys=1e-32``
and so does ``KAN.fit``.  Only scalars (the loss and directional derivatives) travel to the host.
"""

from __future__ import annotations

import math

import numpy as np

from .._namespace import to_numpy, xflat
from ._base import NonFiniteError, Optimizer, check_hyper

__all__ = ["LBFGS"]

_C1, _C2 = 1e-4, 0.9  # sufficient decrease and curvature constants
_MAX_LS = 25


def _cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
    """Minimiser in [lo, hi] of the cubic matching values f and slopes g at t1 and t2
    (Nocedal & Wright eq. 3.59); the midpoint of [lo, hi] when the cubic has no minimiser or
    cannot be formed (t1 == t2, a zero denominator, overflow)."""
    middle = (lo + hi) / 2
    if t1 == t2:
        return middle
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc >= 0:
        d2 = math.copysign(math.sqrt(disc), t2 - t1)
        denominator = g2 - g1 + 2 * d2
        if denominator != 0:
            t = t2 - (t2 - t1) * ((g2 + d2 - d1) / denominator)
            if math.isfinite(t):
                return min(max(t, lo), hi)
    return middle


class _Point:
    """One evaluation along the search line: step t, value f (float, +inf if not finite),
    the raw loss object returned by the closure, flat gradient g and slope gtd = g . d."""

    __slots__ = ("t", "f", "raw", "g", "gtd")

    def __init__(self, t, f, raw, g, gtd):
        self.t, self.f, self.raw, self.g, self.gtd = t, f, raw, g, gtd


class LBFGS(Optimizer):
    """Limited-memory BFGS.

    ``step(closure)``: closure() evaluates the objective at the current parameters and
    returns (loss, grads) with loss a 0-d array or float and grads keyed like the
    parameters.  Returns the loss object at the point the step ends on.

    line_search: "strong_wolfe" (default) or None (fixed step lr).
    """

    HYPER = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "tolerance_ys", "history_size",
             "line_search")

    def __init__(self, params: dict, lr: float = 1.0, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, tolerance_ys: float = 1e-10,
                 history_size: int = 10, line_search: str | None = "strong_wolfe"):
        self.lr = check_hyper("lr", lr, strict=True)
        for name, value in (("max_iter", max_iter), ("history_size", history_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.max_iter, self.history_size = int(max_iter), int(history_size)
        self.max_eval = int(max_eval) if max_eval is not None else self.max_iter * 5 // 4
        if self.max_eval < 1:
            raise ValueError(f"max_eval must be >= 1, got {max_eval!r}")
        self.tolerance_grad = check_hyper("tolerance_grad", tolerance_grad)
        self.tolerance_change = check_hyper("tolerance_change", tolerance_change)
        self.tolerance_ys = check_hyper("tolerance_ys", tolerance_ys)
        if line_search not in ("strong_wolfe", None):
            raise ValueError(f"line_search must be 'strong_wolfe' or None, got {line_search!r}")
        self.line_search = line_search
        super().__init__(params)
        self._names = list(params)
        self._shapes = [tuple(p.shape) for p in params.values()]
        self._sizes = [math.prod(s) for s in self._shapes]
        self.reset()

    def reset(self) -> None:
        """Forget the curvature history (after the parameters jumped, e.g. a grid update)."""
        self.n_iter = 0
        self.func_evals = 0
        self.s_hist: list = []
        self.y_hist: list = []
        self.rho: list[float] = []
        self.h_diag = 1.0
        self.d = None
        self.t = None
        self.prev_g = None
        self.prev_loss = None

    # -- flat vectors ---------------------------------------------------------------------
    def _flat(self, arrays) -> object:
        xp = self.xp
        return xp.concat([xflat(xp, a) for a in arrays])

    def _flat_grad(self, grads: dict):
        self.check_grads(grads)
        return self._flat([grads[n] for n in self._names])

    def _set_flat(self, vec) -> None:
        params = self.params
        if all(type(p) is np.ndarray and p.flags.c_contiguous for p in params.values()):
            off = 0  # NumPy: write through flat views, no reshapes
            for name, size in zip(self._names, self._sizes):
                params[name].reshape(-1)[...] = vec[off : off + size]
                off += size
            return
        off = 0
        for name, shape, size in zip(self._names, self._shapes, self._sizes):
            params[name][...] = self.xp.reshape(vec[off : off + size], shape)
            off += size

    def _dot(self, a, b) -> float:
        return float(self.xp.vecdot(a, b))

    def _evaluate(self, closure, d=None):
        """closure() -> (raw loss, f as float (+inf when not finite), flat grad, g . d or None)."""
        raw, grads = closure()
        g = self._flat_grad(grads)
        xp = self.xp
        # a Python or NumPy scalar from a host-side closure becomes an array of the namespace
        f_arr = raw if type(raw) is type(g) else xp.asarray(float(raw), dtype=g.dtype)
        if d is None:
            f = float(f_arr)
            gtd = None
        else:  # one host transfer for both scalars
            f, gtd = (float(v) for v in to_numpy(xp.stack([xp.reshape(f_arr, ()), xp.vecdot(g, d)])))
        if not math.isfinite(f) or (gtd is not None and not math.isfinite(gtd)):
            f = math.inf  # a trial point without a finite value and slope is unusable
        self.func_evals += 1
        return raw, f, g, gtd

    # -- the algorithm --------------------------------------------------------------------
    def _direction(self, g):
        """Two-loop recursion: -H g with the stored pairs (dot products stay on the device)."""
        vecdot = self.xp.vecdot
        q = -g
        alphas = []
        for s, y, rho in zip(reversed(self.s_hist), reversed(self.y_hist), reversed(self.rho)):
            a = rho * vecdot(s, q)
            alphas.append(a)
            q = q - a * y
        r = q * self.h_diag
        for s, y, rho, a in zip(self.s_hist, self.y_hist, self.rho, reversed(alphas)):
            r = r + (a - rho * vecdot(y, r)) * s
        return r

    def step(self, closure):
        """One step of up to ``max_iter`` iterations; returns the loss object at the point it ends on.

        Raises ``NonFiniteError``, with the parameters unchanged, when the objective or its
        gradient at the current parameters is NaN or infinite, or the gradient is too large to
        step along (its squared norm overflows)."""
        xp = self.xp
        raw, f, g, _ = self._evaluate(closure)
        evals = 1
        g_max = float(xp.max(xp.abs(g)))
        if math.isinf(f):
            raise NonFiniteError("the objective is NaN or infinite at the current parameters")
        if not math.isfinite(g_max):
            raise NonFiniteError(f"the gradient has NaN or infinite entries at the current parameters "
                                 f"(objective {f:.3g})")
        if g_max <= self.tolerance_grad:
            return raw
        x0 = self._flat(self.params.values())
        result = raw
        for it in range(self.max_iter):
            self.n_iter += 1
            if self.n_iter == 1:
                d = -g
                self.h_diag = 1.0
            else:
                y = g - self.prev_g
                s = self.d * self.t
                ys = self._dot(y, s)
                # skip pairs without positive curvature, and those whose products over- or underflow
                yy = self._dot(y, y) if self.tolerance_ys < ys < math.inf else 0.0
                if 0 < yy < math.inf:
                    if len(self.s_hist) == self.history_size:
                        self.s_hist.pop(0), self.y_hist.pop(0), self.rho.pop(0)
                    self.s_hist.append(s)
                    self.y_hist.append(y)
                    self.rho.append(1.0 / ys)
                    self.h_diag = ys / yy
                d = self._direction(g)
            self.prev_g, self.prev_loss = g, f
            if self.n_iter == 1:
                t = min(1.0, 1.0 / float(xp.sum(xp.abs(g)))) * self.lr
            else:
                t = self.lr
            self.d, self.t = d, t
            gtd = self._dot(g, d)
            if not math.isfinite(gtd):
                # the direction overflowed: the curvature history is no guide, start afresh
                steepest = self.n_iter == 1
                self.reset()
                if steepest and it == 0:  # even -g . g overflows
                    raise NonFiniteError(f"the gradient is too large to step along (entries up to {g_max:.3g}: "
                                         "its squared norm overflows)")
                break  # at the last accepted point; the next step starts with steepest descent
            if gtd > -self.tolerance_change or not (0 < t < math.inf):
                break  # not a descent direction, or a step that is zero (lr * 1 / sum|g| underflows)
            if self.line_search == "strong_wolfe":
                point, ls_evals = self._strong_wolfe(closure, x0, t, d, f, g, gtd, raw)
                t, f, g, raw = point.t, point.f, point.g, point.raw
                x0 = x0 + t * d
                self._set_flat(x0)
                evals += ls_evals
            else:
                x0 = x0 + t * d
                self._set_flat(x0)
                if it != self.max_iter - 1:
                    raw, f, g, _ = self._evaluate(closure)
                    evals += 1
            self.t = t
            result = raw
            if evals >= self.max_eval:
                break
            if float(xp.max(xp.abs(g))) <= self.tolerance_grad:
                break
            if abs(t) * float(xp.max(xp.abs(d))) <= self.tolerance_change:
                break
            if abs(f - self.prev_loss) < self.tolerance_change:
                break
        return result

    def _strong_wolfe(self, closure, x0, t, d, f0, g0, gtd0, raw0):
        """Find t satisfying the strong Wolfe conditions along d from x0.

        Returns (the accepted _Point, number of evaluations).  Leaves the parameters at an
        arbitrary trial point: the caller sets them to x0 + t d.
        """
        xp = self.xp
        d_norm = float(xp.max(xp.abs(d)))

        def at(step):
            self._set_flat(x0 + step * d)
            raw, f, g, gtd = self._evaluate(closure, d)
            return _Point(step, f, raw, g, gtd)

        start = _Point(0.0, f0, raw0, g0, gtd0)
        prev, new = start, at(t)
        evals = 1
        bracket = None
        done = False
        # bracketing phase
        while evals <= _MAX_LS:
            if new.f > f0 + _C1 * new.t * gtd0 or (evals > 1 and new.f >= prev.f):
                bracket = [prev, new]
                break
            if abs(new.gtd) <= -_C2 * gtd0:
                bracket = [new]
                done = True
                break
            if new.gtd >= 0:
                bracket = [prev, new]
                break
            if evals == _MAX_LS:
                break
            lo, hi = new.t + 0.01 * (new.t - prev.t), new.t * 10
            step = _cubic_min(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd, lo, hi)
            if not math.isfinite(step) or step <= new.t:  # the step cannot grow further: take this point
                bracket = [new]
                break
            prev, new = new, at(step)
            evals += 1
        if bracket is None:
            bracket = [start, new]
        # zoom phase
        insufficient = False
        while not done and evals < _MAX_LS and len(bracket) == 2:
            low_i = 0 if bracket[0].f <= bracket[1].f else 1
            low, high = bracket[low_i], bracket[1 - low_i]
            if high.t == low.t or abs(high.t - low.t) * d_norm < self.tolerance_change:
                break
            a, b = min(low.t, high.t), max(low.t, high.t)
            p0, p1 = bracket
            if math.isfinite(p0.f) and math.isfinite(p1.f):
                step = _cubic_min(p0.t, p0.f, p0.gtd, p1.t, p1.f, p1.gtd, a, b)
            else:
                step = (a + b) / 2
            # keep the trial away from the ends unless progress stalls
            margin = 0.1 * (b - a)
            if min(b - step, step - a) < margin:
                if insufficient or step >= b or step <= a:
                    step = b - margin if abs(step - b) < abs(step - a) else a + margin
                    insufficient = False
                else:
                    insufficient = True
            else:
                insufficient = False
            new = at(step)
            evals += 1
            if new.f > f0 + _C1 * new.t * gtd0 or new.f >= low.f:
                bracket[1 - low_i] = new
            else:
                if abs(new.gtd) <= -_C2 * gtd0:
                    done = True
                elif new.gtd * (high.t - low.t) >= 0:
                    bracket[1 - low_i] = low
                bracket[low_i] = new
        best = bracket[0] if len(bracket) == 1 or bracket[0].f <= bracket[1].f else bracket[1]
        if best is start:  # no decrease found: stay put
            best = _Point(0.0, f0, raw0, g0, gtd0)
        return best, evals

    # -- state ----------------------------------------------------------------------------
    def _scalars(self) -> dict:
        return {
            "n_iter": self.n_iter, "func_evals": self.func_evals, "rho": list(self.rho), "h_diag": self.h_diag,
            "t": self.t, "prev_loss": self.prev_loss,
        }

    def _arrays(self) -> dict:
        out = {}
        if self.d is not None:
            out["d"] = self.d
            out["prev_g"] = self.prev_g
        for i, (s, y) in enumerate(zip(self.s_hist, self.y_hist)):
            out[f"s/{i}"] = s
            out[f"y/{i}"] = y
        return out

    def _restore(self, scalars: dict, arrays: dict) -> None:
        n = sum(self._sizes)
        for key, a in arrays.items():
            if tuple(a.shape) != (n,):
                raise ValueError(f"LBFGS state {key!r} has shape {tuple(a.shape)}, expected ({n},)")
        rho = [float(r) for r in scalars.get("rho", [])]
        s_hist = [arrays[f"s/{i}"] for i in range(len(rho))]
        y_hist = [arrays[f"y/{i}"] for i in range(len(rho))]
        self.reset()
        self.n_iter = int(scalars.get("n_iter", 0))
        self.func_evals = int(scalars.get("func_evals", 0))
        self.rho, self.s_hist, self.y_hist = rho, s_hist, y_hist
        self.h_diag = float(scalars.get("h_diag", 1.0))
        self.t = scalars.get("t")
        self.prev_loss = scalars.get("prev_loss")
        self.d = arrays.get("d")
        self.prev_g = arrays.get("prev_g")

    def _adopt(self, previous: "LBFGS", keep: set) -> None:
        # curvature pairs live in the previous parameter space: only a transfer that keeps every
        # parameter unchanged may keep them
        if keep == set(previous.params) == set(self.params) and self._shapes == previous._shapes:
            self._restore(previous._scalars(), previous._arrays())
