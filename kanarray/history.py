"""``History``: the per-step curves of ``KAN.fit`` (and of joined fits), with pykan's names as aliases."""

from __future__ import annotations

import math
from typing import ClassVar

__all__ = ["History"]


class History(dict):
    """Per-step curves: ``train_loss``, ``val_loss`` (RMSE for mse, cross-entropy otherwise),
    ``reg`` (the penalty; 0 when lamb == 0), ``val_acc`` (cross_entropy with validation).
    pykan's names read the same lists: ``history["test_loss"]`` is ``history["val_loss"]``
    (``ALIASES``; not listed by keys() or items()).

    Attributes: ``optimizer`` (to continue training or save), ``interrupted`` (Ctrl-C),
    ``best_step`` and ``best_val_loss`` (with validation: the step, an index into the curves,
    with the lowest validation loss, and that loss; None without validation), ``stopped_early``
    (``patience`` ended the fit), ``loss`` (the fit's loss name, or None; "pde" for a physics problem, whose
    terms have a curve each), ``stages`` (the step index where each fit's curves start: [0], one more per
    ``extend``), ``start_probe`` (None, or what ``kanarray.start_probe`` measured and chose before the fit).
    """

    ALIASES: ClassVar[dict] = {"test_loss": "val_loss", "test_acc": "val_acc"}

    def __init__(self, keys):
        super().__init__({key: [] for key in keys})
        self.optimizer = None
        self.interrupted = False
        self.best_step = self.best_val_loss = None
        self.stopped_early = False
        self.loss = None
        self.stages = [0]
        self.start_probe = None

    def __missing__(self, key):
        if key in self.ALIASES and dict.__contains__(self, self.ALIASES[key]):
            return self[self.ALIASES[key]]
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or dict.__contains__(self, self.ALIASES.get(key, key))

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def _length(self) -> int:
        return max((len(v) for v in dict.values(self)), default=0)

    def extend(self, other: History) -> History:
        """Append a later fit's curves as a new stage; a curve only one of them has is padded
        with NaN so that every curve stays aligned on the steps.  Returns self."""
        if self.start_probe is None:
            self.start_probe = getattr(other, "start_probe", None)
        loss = getattr(other, "loss", None)
        if self.loss is not None and loss is not None and self.loss != loss:
            raise ValueError(f"cannot join histories of different losses ({self.loss!r} and {loss!r})")
        before, added = self._length(), max((len(v) for v in dict.values(other)), default=0)
        if not added:
            return self
        starts = [before + s for s in getattr(other, "stages", [0])]  # an extended other brings its stages
        self.stages.extend(starts if before else starts[1:])
        seen = set()  # a curve stored under two names is extended once
        for key in list(dict.keys(self)) + [k for k in dict.keys(other) if k not in self]:
            target = dict.setdefault(self, key, [])
            if id(target) in seen:
                continue
            seen.add(id(target))
            values = list(dict.get(other, key, ()))
            if not target and not values:
                continue  # a curve neither has (val_loss without validation) stays empty
            target.extend([math.nan] * (before - len(target)))
            target.extend(values + [math.nan] * (added - len(values)))
        self.optimizer = getattr(other, "optimizer", None)
        self.interrupted = self.interrupted or getattr(other, "interrupted", False)
        self.loss = self.loss or loss
        return self

    def plot(self, path=None):
        """The curves (log scale), a dashed line where each stage (fit) starts and the y axis
        named by the loss: a PNG at ``path`` written atomically (returns None), or, with no
        path, the matplotlib Figure (``kanarray.plotting.plot_history``)."""
        from .plotting import plot_history

        return plot_history(self, path)
