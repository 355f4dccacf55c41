"""Multiplication nodes (pykan's MultKAN): width parsing, the forward against an independent
reference, hand gradients against finite differences on every backend, and pykan's numbers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import assert_grad_close, assert_parameter_gradients, fd_grad, host, perturb, reference_edges

import kanarray as ka
from kanarray.nodes import parse_width

# (width, mult_arity): homogeneous pairs, an arity of 3, per-node arities, a layer of products only
MULT_CASES = [
    ([2, [2, 1], 1], 2),
    ([3, [1, 2], 2], 3),
    ([2, [1, 2], [0, 1], 1], [[], [2, 3], [2], []]),
    ([2, [1, 1]], 2),  # multiplication nodes among the outputs (pykan's [2, [0, 1]] multiplies two sums)
]


def mult_model(backend, width, mult_arity, *, seed=0, affine_trainable=True, **kwargs):
    """A perturbed model whose node stages hold random (non-identity) affine values."""
    model = ka.KAN(width, mult_arity=mult_arity, grid=4, k=3, seed=seed, backend=backend, bias_trainable=True,
                   affine_trainable=affine_trainable, **kwargs)
    perturb(model, seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        for name, a in layer.nodes.arrays().items():
            values = rng.uniform(0.6, 1.4, a.shape) if "scale" in name else rng.normal(scale=0.3, size=a.shape)
            setattr(layer.nodes, name, model.xp.asarray(values, dtype=model.dtype))
    return model


def reference_forward(model, x):
    """The network by hand on the host: each layer's sums edge by edge with scipy's BSpline
    (``helpers.reference_edges``), then the affine maps and the products over consecutive
    sub-nodes written out as loops."""
    h = np.asarray(x, dtype=np.float64)
    for layer in model.layers:
        stage = layer.nodes
        y = reference_edges(layer, h).sum(axis=1) + host(layer.bias)
        if stage is None:
            h = y
            continue
        a = stage.host_arrays()
        s = y * a["subnode_scale"] + a["subnode_bias"]
        out = [s[:, i] for i in range(stage.n_add)]
        start = stage.n_add
        for arity in stage.arities:
            product = np.ones(len(h))
            for i in range(start, start + arity):
                product = product * s[:, i]
            out.append(product)
            start += arity
        h = np.stack(out, axis=1) * a["node_scale"] + a["node_bias"]
    return h


@pytest.mark.parametrize("width,mult_arity", MULT_CASES)
def test_forward_matches_the_reference(backend, width, mult_arity):
    model = mult_model(backend, width, mult_arity, seed=3)
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (40, width[0]))
    got = host(model(model.xp.asarray(x)))
    assert got.shape == (40, model.width[-1])
    np.testing.assert_allclose(got, reference_forward(model, x), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("lamb", [0.0, 1e-2])
@pytest.mark.parametrize("width,mult_arity", MULT_CASES)
def test_parameter_gradients_match_finite_differences(backend, width, mult_arity, lamb):
    model = mult_model(backend, width, mult_arity, seed=1)
    xp = model.xp
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.uniform(-1.5, 1.5, (30, width[0])))
    y = xp.asarray(rng.normal(size=(30, model.width[-1])))
    names = set(model.parameters())
    assert {f"layers.0.{n}" for n in ("node_scale", "node_bias", "subnode_scale", "subnode_bias")} <= names
    _, grads = model.value_and_grad(x, y, lamb=lamb)
    assert_parameter_gradients(model, lambda: float(model.value_and_grad(x, y, lamb=lamb)[0]), grads)


@pytest.mark.parametrize("width,mult_arity", MULT_CASES)
def test_input_gradient_matches_finite_differences(backend, width, mult_arity):
    model = mult_model(backend, width, mult_arity, seed=2)
    xp = model.xp
    rng = np.random.default_rng(2)
    x0 = rng.uniform(-1.5, 1.5, (12, width[0]))
    gy = rng.normal(size=(12, model.width[-1]))
    _, _, dx = model.vjp(xp.asarray(x0), xp.asarray(gy))
    ref = fd_grad(lambda v: float(np.sum(host(model(xp.asarray(v))) * gy)), x0.copy())
    assert_grad_close(host(dx), ref, "x")


def test_a_zero_factor_still_gets_its_gradient():
    """The product's gradient is formed from the other factors, not by division."""
    model = ka.KAN([2, [0, 1], 1], seed=0)
    model.layers[0].nodes.subnode_bias = np.array([0.0, 0.0])
    x = np.zeros((1, 2))
    layer = model.layers[0]
    out, cache = layer.forward(x)
    sums = layer.copy()
    sums.nodes = None
    s = host(sums.forward(x)[0])[0]
    _, gs = layer.nodes.backward(cache.nodes, np.ones((1, 1)))
    np.testing.assert_allclose(host(gs)[0], [s[1], s[0]], rtol=0, atol=0)


def test_affine_is_fixed_by_default_like_pykan():
    model = ka.KAN([2, [3, 2], 1], seed=0)
    assert not any("node" in name for name in model.parameters())
    stage = model.layers[0].nodes
    assert stage.is_identity() is False  # multiplication nodes are not the identity
    np.testing.assert_array_equal(stage.host_arrays()["subnode_scale"], np.ones(7))
    assert model.layers[1].nodes is None


def test_width_facts_and_repr():
    model = ka.KAN([2, [5, 2], 1], seed=0)
    assert model.width == [2, 7, 1]
    assert model.node_width == [[2, 0], [5, 2], [1, 0]]
    assert model.mult_arity == [[], [2, 2], []]
    assert model.layers[0].out_dim == 9 and model.layers[0].n_nodes == 7
    assert "width=[2, [5, 2], 1]" in repr(model)
    assert parse_width([2, [0, 1], [2, 0], 1], [[], 3, [], []]) == ([2, 1, 2, 1], [2, 0, 2, 1], [(), (3,), (), ()])


@pytest.mark.parametrize(
    "width, mult_arity, message",
    [
        ([2, [3, 1, 1], 1], 2, r"width\[1\] = \[3, 1, 1\]: an entry is an int .* or a pair"),
        ([2, [3, -1], 1], 2, r"width\[1\]\[1\] must be an integer >= 0"),
        ([2, [3, 1.5], 1], 2, r"width\[1\]\[1\] must be an integer >= 0"),
        ([2, [0, 0], 1], 2, "at least one node"),
        ([2, "5", 1], 2, r"width\[1\] must be an integer >= 1, got '5'"),
        ([2, 2.5, 1], 2, r"width\[1\] must be an integer >= 1, got 2.5"),
        ([[2, 1], 3, 1], 2, "the inputs cannot hold multiplication nodes"),
        ([2, [3, 1], 1], 1, "mult_arity must be an int from 2"),
        ([2, [3, 1], 1], True, "mult_arity must be an int or a list"),
        ([2, [3, 2], 1], [[], [2], []], r"mult_arity\[1\] = \[2\]: width\[1\] has 2 multiplication node"),
        ([2, [3, 1], 1], [2, 3], "mult_arity lists 2 entries but width has 3"),
        ([2, [3, 1], 1], "2", "mult_arity must be an int or a list"),
        ([2, [3, 1], 1], [[], [1], []], r"mult_arity\[1\]\[0\] must be an int from 2"),
    ],
)
def test_bad_widths_and_arities_are_refused(width, mult_arity, message):
    with pytest.raises(ValueError, match=message):
        ka.KAN(width, mult_arity=mult_arity)


def test_affine_trainable_and_init_are_checked():
    with pytest.raises(ValueError, match="affine_trainable must be True or False"):
        ka.KAN([2, [1, 1], 1], affine_trainable=1)
    with pytest.raises(ValueError, match=r"init must be one of \['kanarray', 'pykan'\]"):
        ka.KAN([2, 1], init="torch")


def test_the_torch_stream_matches_torch():
    torch = pytest.importorskip("torch")
    from kanarray.seeding import TorchStream

    for seed in (0, 7, 2**40 + 5):
        torch.manual_seed(seed)
        expected = [torch.rand(*shape, dtype=torch.float64).numpy() for shape in ((6, 2, 3), (2, 3), (17,))]
        stream = TorchStream(seed)
        for want in expected:
            np.testing.assert_array_equal(stream.random(want.shape), want)


PARITY_CASES = [([2, [5, 2], 1], 2, 0), ([2, [0, 1]], 2, 4), ([3, [1, 2], [0, 1], 2], [[], [2, 3], [2], []], 7),
                ([2, [2, 1], 1], 3, 3), ([2, 3, 1], 2, 1)]


@pytest.mark.parametrize("width,mult_arity,seed", PARITY_CASES)
def test_same_seed_same_function_as_pykan_multkan(tmp_path, width, mult_arity, seed):
    torch = pytest.importorskip("torch")
    pykan = pytest.importorskip("kan")
    ours = ka.KAN(width, mult_arity=mult_arity, grid=5, k=3, seed=seed, init="pykan")
    x = np.random.default_rng(0).uniform(-2, 2, (300, ours.width[0]))  # inside and outside the grid
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        peer = pykan.MultKAN(width=copy.deepcopy(width), mult_arity=copy.deepcopy(mult_arity), grid=5, k=3, seed=seed,
                             auto_save=False, ckpt_path=str(tmp_path), device="cpu")
        expected = peer(torch.from_numpy(x)).detach().numpy()
    finally:
        torch.set_default_dtype(previous)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(ours(x), expected, atol=1e-12, rtol=0)
