"""The names of a model's variables: ``KAN.input_names`` (width[0]) and ``KAN.output_names``
(width[-1]), each None or a tuple of distinct non-empty strings.

``kanarray fit`` sets them from the table's columns; checkpoints and ONNX graphs store them, and
``kanarray predict`` picks a CSV's columns by them.  ``check_names`` is the one validator (the
model's setters, the checkpoint reader and ``OnnxModel`` use it); ``inherited`` says which names
a model rebuilt from another (``KAN.from_layers(like=...)``: pruning, ``refine``) keeps.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["check_names", "default_output_names", "inherited"]

MAX_NAME_LENGTH = 1000  # characters per name: column names, not documents


def check_names(names, count: int, what: str = "names"):
    """None, or ``names`` as a tuple of ``count`` distinct non-empty strings (ValueError otherwise,
    saying what was wrong)."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise ValueError(f"{what} must be a list of {count} strings or None, got {type(names).__name__}")
    names = tuple(names)
    if len(names) != count:
        raise ValueError(f"{what} lists {len(names)} names for {count} variables")
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or len(n) > MAX_NAME_LENGTH]
    if bad:
        raise ValueError(f"{what} must be non-empty strings of at most {MAX_NAME_LENGTH} characters, got "
                         f"{[repr(b)[:40] for b in bad[:5]]}")
    if len(set(names)) != len(names):
        dup = sorted(n for n, times in Counter(names).items() if times > 1)
        raise ValueError(f"{what} must be distinct; listed more than once: {dup[:5]}")
    return names


def inherited(names, count: int):
    """The names a rebuilt model takes over from the model it is like: the same ones when it has
    as many variables, else None (a model with other variables cannot know which names are whose;
    whoever removes inputs passes the kept names explicitly)."""
    return names if names is not None and len(names) == count else None


def default_output_names(count: int) -> list[str]:
    """y0, y1, ...: the output column names of ``kanarray predict`` for a model without names."""
    return [f"y{j}" for j in range(count)]
