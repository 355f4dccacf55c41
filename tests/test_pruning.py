"""Attribution scores and pruning, against pykan's formulas written out independently."""

from __future__ import annotations

import numpy as np
import pytest

import kanarray as ka

from helpers import expsin_data, host, reference_edges


def _model_and_data(backend="numpy", seed=0):
    x, y = expsin_data(300, seed=seed)
    model = ka.KAN([2, 5, 1], grid=3, seed=1, backend=backend)
    model.fit(x, y, steps=15, lamb=1e-2, progress=False)
    return model, x, y


@pytest.fixture(scope="module")
def trained():
    return _model_and_data()


def test_attribution_matches_pykans_formula(trained):
    model, x, _ = trained
    h = x
    stds, node_std = [], []
    for layer in model.layers:  # edge activations by scipy's BSpline, edge by edge
        phi = reference_edges(layer, h)  # (B, n, m)
        stds.append(phi.std(axis=0, ddof=1))
        h = phi.sum(axis=1) + host(layer.bias)
        node_std.append(h.std(axis=0, ddof=1))
    # pykan: back from the output, edge = std(phi) * score(out node) / (std(out node) + 1e-4)
    out_score = np.ones(1)
    expected_edges = [None, None]
    expected_nodes = [None, None, out_score]
    for l in (1, 0):
        e = stds[l] * out_score[None, :] / (node_std[l] + 1e-4)[None, :]
        expected_edges[l] = e
        out_score = e.sum(axis=1)
        expected_nodes[l] = out_score
    got = model.attribute(x)
    for l in range(2):
        np.testing.assert_allclose(got.edge_scores[l], expected_edges[l], rtol=1e-9)
    for l in range(3):
        np.testing.assert_allclose(got.node_scores[l], expected_nodes[l], rtol=1e-9)


def test_prune_node_keeps_the_function_of_the_kept_paths(trained):
    model, x, _ = trained
    scores = model.attribute(x).node_scores[1]
    th = float(np.sort(scores)[-2]) * 0.999  # keep the two strongest hidden nodes
    pruned = model.prune_node(x, threshold=th)
    kept = np.nonzero(scores > th)[0]
    assert pruned.width == [2, 2, 1] and len(kept) == 2
    # reference: the old model's hidden activations, removed nodes' outgoing edges replaced by their means
    hidden = host(model.layers[0].forward(x)[0])
    phi = reference_edges(model.layers[1], hidden)  # (B, 5, 1)
    removed = np.setdiff1d(np.arange(5), kept)
    ref = phi[:, kept, :].sum(axis=1) + phi[:, removed, :].mean(axis=0).sum(axis=0) + host(model.layers[1].bias)
    np.testing.assert_allclose(pruned(x), ref, rtol=1e-12, atol=1e-12)
    # the original is untouched
    assert model.width == [2, 5, 1]


def test_prune_edge_masks_weak_edges_and_folds_their_mean_into_the_bias(trained):
    model, x, _ = trained
    scores = model.attribute(x).edge_scores
    th = float(np.median(scores[0]))
    pruned = model.prune_edge(x, threshold=th)
    mask0 = host(pruned.layers[0].mask)
    np.testing.assert_array_equal(mask0, (scores[0] > th).astype(float))
    phi = reference_edges(model.layers[0], x)
    weak = scores[0] <= th
    shift = (phi.mean(axis=0) * weak).sum(axis=0)
    np.testing.assert_allclose(host(pruned.layers[0].bias), host(model.layers[0].bias) + shift, rtol=1e-12)


def test_prune_shrinks_the_demo_model_and_keeps_its_accuracy(trained):
    model, x, y = trained
    pruned = model.prune()  # default samples: the inputs of the last fit
    assert pruned.width[1] < 5
    rmse = lambda m: float(np.sqrt(np.mean((m(x) - y) ** 2)))  # noqa: E731
    assert rmse(pruned) < 1.5 * rmse(model) + 1e-3


@pytest.mark.parametrize("w", [1, 2, 3, 5])
def test_prune_to_width_keeps_the_strongest_nodes_and_matches_prune_node(trained, w):
    model, x, _ = trained
    scores = model.attribute(x).node_scores[1]
    pruned = model.prune_to_width([2, w, 1], x)
    assert pruned.width == [2, w, 1] and model.width == [2, 5, 1]
    strongest = np.sort(np.argsort(-scores)[:w])
    # the same nodes prune_node keeps with a threshold just below the w-th score: the same model
    th = float(np.sort(scores)[::-1][w - 1]) * 0.999
    by_threshold = model.prune_node(x, threshold=th)
    assert len(np.nonzero(scores > th)[0]) == w and list(np.nonzero(scores > th)[0]) == list(strongest)
    np.testing.assert_array_equal(pruned(x), by_threshold(x))


def test_prune_to_width_refuses_a_width_it_cannot_reach(trained):
    model, x, _ = trained
    for bad in ([2, 6, 1], [2, 0, 1], [3, 2, 1], [2, 2, 2], [2, 2, 2, 1]):
        with pytest.raises(ValueError, match="width must keep the inputs and outputs"):
            model.prune_to_width(bad, x)


def test_pruning_everything_is_refused_and_leaves_the_model_unchanged(trained):
    model, x, _ = trained
    before = [host(a).copy() for a in model.parameters().values()]
    with pytest.raises(ValueError, match="every node of hidden layer 1"):
        model.prune_node(x, threshold=1e9)
    with pytest.raises(ValueError, match="every edge of layer"):
        model.prune_edge(x, threshold=1e9)
    with pytest.raises(ValueError, match="node_th"):
        model.prune(x, node_th=-1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.prune(x[:1])
    assert all(np.array_equal(a, host(b)) for a, b in zip(before, model.parameters().values()))


def test_pruning_runs_on_every_backend(backend, tmp_path):
    model, x, _ = _model_and_data(seed=2)
    ref = model.prune(x)
    model.save(tmp_path / "m.kan")
    on = ka.load(tmp_path / "m.kan", backend=backend)
    got = on.prune(on.xp.asarray(x))
    assert got.width == ref.width
    np.testing.assert_allclose(host(got(got.xp.asarray(x))), ref(x), rtol=1e-10, atol=1e-12)
