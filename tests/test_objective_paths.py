"""The unregularized objective runs hidden layers with few sums edge by edge
(``objective._edges_cheaper``): it must give what the basis path gives, and its gradients
must match finite differences."""

import numpy as np
import pytest
from helpers import assert_parameter_gradients, host, random_model

from kanarray import objective
from kanarray.objective import evaluate


def both_paths(model, x, y, monkeypatch):
    edges = evaluate(model, x, y, cache={})
    with monkeypatch.context() as mp:
        mp.setattr(objective, "EDGE_MAX_OUT", 0)  # every layer through its bases
        bases = evaluate(model, x, y, cache={})
    return edges, bases


@pytest.mark.parametrize("width,extrapolate", [([2, 3, 1], "spline"), ([3, 4, 2, 1], "linear"),
                                               ([2, [2, 1], 1], "spline"), ([2, 6, 2], "spline")])
def test_edge_path_agrees_with_the_basis_path(width, extrapolate, monkeypatch):
    model = random_model("numpy", width, extrapolate=extrapolate)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.3, 1.3, (64, model.width[0]))  # some inputs off the grid
    y = rng.normal(size=(64, model.width[-1]))
    if width == [2, 3, 1]:
        i = int(np.argmax(host(model.layers[1].mask)[:, 0]))  # an edge the perturbation left unmasked
        model.fix_symbolic(1, i, 0, "sin", x=x)  # a symbolic edge in an edge-path layer
    edges, bases = both_paths(model, x, y, monkeypatch)
    assert objective._edges_cheaper(model.layers[1]) == (model.layers[1].out_dim <= objective.EDGE_MAX_OUT)
    np.testing.assert_allclose(host(edges.objective), host(bases.objective), rtol=1e-13)
    np.testing.assert_allclose(host(edges.pred), host(bases.pred), rtol=1e-12, atol=1e-14)
    assert set(edges.grads) == set(bases.grads)
    for name, g in bases.grads.items():
        np.testing.assert_allclose(host(edges.grads[name]), host(g), rtol=1e-10, atol=1e-13, err_msg=name)


def test_edge_path_gradients_match_finite_differences():
    model = random_model("numpy", [2, 3, 1])
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 1, (40, 2)), rng.normal(size=(40, 1))
    assert objective._edges_cheaper(model.layers[1])
    ev = evaluate(model, x, y, cache={})
    assert_parameter_gradients(model, lambda: float(host(evaluate(model, x, y, grad=False).objective)), ev.grads)
