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
    """The product's gradient is formed from the other factors, not by division: with one factor
    exactly 0, its own gradient is the other factor and the other's is 0."""
    model = ka.KAN([2, [0, 1], 1], seed=0)
    layer = model.layers[0]
    x = np.zeros((1, 2))
    sums = layer.copy()
    sums.nodes = None
    s = host(sums.forward(x)[0])[0]
    assert np.all(s != 0)
    layer.nodes.subnode_bias = np.array([-s[0], 0.0])  # factor 0 is exactly zero at x
    out, cache = layer.forward(x)
    assert host(out)[0, 0] == 0.0
    _, gs = layer.nodes.backward(cache.nodes, np.ones((1, 1)))
    np.testing.assert_array_equal(host(gs)[0], [s[1], 0.0])


def test_restore_brings_back_the_trainable_node_affine():
    """fit's snapshots (restore_best, the last finite parameters) cover the node stages too."""
    from kanarray.recovery import Snapshot

    model = ka.KAN([2, [1, 1], 1], seed=0, affine_trainable=True)
    snap = Snapshot(model)
    snap.take()
    model.layers[0].nodes.node_scale[...] = 7.0
    model.layers[0].symbolic.affine[...] = 3.0
    snap.restore()
    np.testing.assert_array_equal(host(model.layers[0].nodes.node_scale), [1.0, 1.0])
    assert not np.any(host(model.layers[0].symbolic.affine))
    x, y = product_data(200)
    history = model.fit(x, y, steps=30, opt="adam", lr=0.5, validation=(x[:50], y[:50]), restore_best=True)
    best = min(history["val_loss"])
    assert float(np.sqrt(np.mean((model(x[:50]) - y[:50]) ** 2))) == pytest.approx(best, rel=1e-12)


def test_ranks_see_different_arities_as_different_models():
    from kanarray.distributed import parameters_digest

    a = ka.KAN([2, [1, 2], 1], mult_arity=[[], [2, 3], []], seed=0)
    b = ka.KAN([2, [1, 2], 1], mult_arity=[[], [3, 2], []], seed=0)
    assert a.mult_arity != b.mult_arity  # the layout key of ``distributed.agree`` holds both
    c = a.copy()
    c.layers[0].nodes.node_bias = c.xp.asarray([0.0, 0.0, 1.0])
    assert parameters_digest(c) != parameters_digest(a)


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


# -- the rest of the pipeline ------------------------------------------------------------------


def product_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, x[:, :1] * x[:, 1:]


def test_fit_with_the_penalty_and_grid_updates_learns_a_product():
    x, y = product_data()
    model = ka.KAN([2, [0, 1]], grid=5, seed=0)
    before = float(np.sqrt(np.mean((model(x) - y) ** 2)))
    history = model.fit(x, y, steps=30, lamb=1e-4)
    assert history["train_loss"][-1] < 0.05 * before
    assert model.fit_inputs is not None  # the grids were updated on the samples


def test_checkpoint_round_trip_is_exact(tmp_path):
    model = mult_model("numpy", [2, [1, 2], [0, 1], 1], [[], [2, 3], [2], []], seed=5)
    model.save(tmp_path / "m.kan")
    back = ka.load(tmp_path / "m.kan")
    x = np.random.default_rng(1).uniform(-1, 1, (50, 2))
    np.testing.assert_array_equal(back(x), model(x))
    assert back.mult_arity == model.mult_arity and back.node_width == model.node_width
    assert list(back.parameters()) == list(model.parameters())
    with zipfile_header(tmp_path / "m.kan") as header:
        assert header["version"] == 3 and header["model"]["nodes"][0] == {"n_add": 1, "arities": [2, 3],
                                                                          "trainable": True}


def zipfile_header(path):
    import contextlib
    import json
    import zipfile

    @contextlib.contextmanager
    def opened():
        with zipfile.ZipFile(path) as zf:
            yield json.loads(zf.read("kanarray.json"))

    return opened()


def test_checkpoint_with_nodes_under_an_older_version_is_refused(tmp_path):
    import json
    import zipfile

    ka.KAN([2, [1, 1], 1], seed=0).save(tmp_path / "m.kan")
    with zipfile.ZipFile(tmp_path / "m.kan") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["kanarray.json"])
    header["version"] = 2
    members["kanarray.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "old.kan", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(ka.CheckpointError, match="has node stages .* but format version 2"):
        ka.load(tmp_path / "old.kan")


def test_checkpoint_with_a_bad_node_layout_is_refused(tmp_path):
    import json
    import zipfile

    model = ka.KAN([2, [1, 1], 1], seed=0)
    model.save(tmp_path / "m.kan")
    with zipfile.ZipFile(tmp_path / "m.kan") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["kanarray.json"])
    header["model"]["nodes"][0]["arities"] = [1]
    members["kanarray.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "bad.kan", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(ka.CheckpointError, match=r"nodes\[0\]: n_add must be an int >= 0, arities a list of ints"):
        ka.load(tmp_path / "bad.kan")


def test_refine_copy_and_move_keep_the_node_stage():
    pytest.importorskip("array_api_strict")
    model = mult_model("numpy", [2, [2, 1], 1], 2, seed=4)
    x = np.random.default_rng(2).uniform(-1, 1, (80, 2))
    model.update_grid(x)
    finer = model.refine(12, x)
    assert finer.grid == [12, 12] and finer.mult_arity == model.mult_arity
    np.testing.assert_allclose(finer(x), model(x), atol=1e-9)
    np.testing.assert_array_equal(model.copy()(x), model(x))
    moved = model.copy().to("array_api_strict")
    np.testing.assert_allclose(host(moved(moved.xp.asarray(x))), model(x), rtol=0, atol=1e-15)
    single = model.copy().to(dtype="float32")
    assert single.layers[0].nodes.node_scale.dtype == np.float32


def test_onnx_export_matches_on_both_runtimes():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from helpers import run_onnx_reference, run_ort

    from kanarray.export import to_onnx

    for width, arity in MULT_CASES:
        model = mult_model("numpy", width, arity, seed=6)
        x = np.random.default_rng(3).uniform(-1.6, 1.6, (64, width[0]))
        proto = to_onnx(model, dtype="float64")
        assert sum(node.op_type == "Mul" for node in proto.graph.node) >= sum(
            a - 1 for arities in model.mult_arity for a in arities) > 0 or not any(model.mult_arity)
        for run in (run_ort, run_onnx_reference):
            np.testing.assert_allclose(run(proto, x), model(x), rtol=0, atol=1e-12)


def test_symbolic_formula_holds_the_products():
    sympy = pytest.importorskip("sympy")
    model = ka.KAN([2, [0, 1]], grid=5, seed=0)
    x, y = product_data()
    model.fit(x, y, steps=5)
    for i in range(2):  # sum 0 = x_1, sum 1 = x_2: the product is x_1 x_2
        for j in range(2):
            model.fix_symbolic(0, i, j, "x" if i == j else "0", fit_params=False,
                               params=(1.0, 0.0, 1.0 if i == j else 0.0, 0.0))
    (expr,) = model.symbolic_formula(on_mismatch="raise")
    x1, x2 = sympy.symbols("x_1 x_2")
    assert sympy.simplify(expr - x1 * x2) == 0
    np.testing.assert_allclose(model(x), y, atol=1e-14)


def test_attribution_and_pruning_keep_multiplication_nodes_whole():
    x, y = product_data()
    model = ka.KAN([2, [2, 2], 1], grid=5, seed=0)
    model.fit(x, y, steps=20, lamb=1e-3)
    scores = model.attribute(x)
    assert [s.shape for s in scores.node_scores] == [(2,), (4,), (1,)]
    assert scores.edge_scores[0].shape == (2, 6) and scores.edge_scores[1].shape == (4, 1)
    strongest = int(np.argmax(scores.node_scores[1]))
    smaller = model.prune_to_width([2, 1, 1], x)
    kept = model.node_width[1]
    assert smaller.width == [2, 1, 1]
    assert smaller.node_width[1] == ([1, 0] if strongest < kept[0] else [0, 1])
    assert smaller.layers[0].out_dim == (1 if strongest < kept[0] else 2)
    pairs = model.prune_to_width([2, [1, 1], 1], x)  # the best addition and the best multiplication node
    assert pairs.node_width == [[2, 0], [1, 1], [1, 0]] and pairs.layers[0].out_dim == 3
    with pytest.raises(ValueError, match=r"pairs up to \[\[2, 2\]\]"):
        model.prune_to_width([2, [3, 0], 1], x)


def test_attribution_matches_pykan(tmp_path):
    torch = pytest.importorskip("torch")
    pykan = pytest.importorskip("kan")
    ours = ka.KAN([2, [2, 2], 1], grid=5, seed=3, init="pykan")
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        peer = pykan.MultKAN(width=[2, [2, 2], 1], grid=5, k=3, seed=3, auto_save=False, ckpt_path=str(tmp_path),
                             device="cpu")
        peer(torch.from_numpy(x))
        peer.attribute(plot=False)
        theirs = [s.detach().numpy() for s in peer.node_scores]
        their_edges = [s.detach().numpy() for s in peer.edge_scores]
    finally:
        torch.set_default_dtype(previous)
    got = ours.attribute(x)
    for a, b in zip(got.node_scores, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    for a, b in zip(got.edge_scores, their_edges):  # pykan's edge scores are (out, in)
        np.testing.assert_allclose(a, b.T, rtol=1e-9)


def test_plot_draws_multiplication_nodes_distinctly(tmp_path):
    pytest.importorskip("matplotlib")
    model = ka.KAN([2, [1, 2], 1], grid=5, seed=0)
    x, _ = product_data(100)
    fig = model.plot(x=x)
    mult = [a for a in fig.axes[0].collections if a.get_gid() == "mult_node"]
    sums = [a for a in fig.axes[0].collections if a.get_gid() == "subnode"]
    assert len(mult) == 1 and mult[0].get_offsets().shape[0] == 2  # the hidden row's two multiplication nodes
    assert sums and sums[0].get_offsets().shape[0] == 5  # the five sums of the hidden row
    assert "×" in [t.get_text() for t in fig.axes[0].texts]
    model.plot(tmp_path / "mult.png", x=x)
    assert (tmp_path / "mult.png").stat().st_size > 1000
