"""Moving models between pykan 0.2.8 and kanarray (``kanarray.pykan_convert``): the converted model
computes what pykan's computes (fresh, after fit with grid updates, after prune and auto_symbolic,
from checkpoint files), kanarray -> pykan -> kanarray is exact, and what does not carry is refused.

The tests that need torch and pykan skip where they are not installed (they are no dependency)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import kanarray as ka
from kanarray.pykan_convert import FROM_PYKAN_NAMES, TO_PYKAN_NAMES
from kanarray.symbolic import library

TOL = 1e-10


# -- without torch -----------------------------------------------------------------------------
def test_importing_kanarray_imports_neither_torch_nor_yaml_nor_pykan():
    code = "import sys, kanarray; print([m for m in ('torch', 'yaml', 'kan') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_from_pykan_refuses_what_is_not_a_pykan_model():
    assert issubclass(ka.PykanConversionError, ValueError)
    with pytest.raises(ka.PykanConversionError, match="takes a pykan 0.2.8 KAN .MultKAN., got KAN"):
        ka.from_pykan(ka.KAN([2, 2, 1]))


def test_a_missing_checkpoint_file_is_named(tmp_path):
    (tmp_path / "m_config.yml").write_text("width: [[1, 0], [1, 0]]\n")
    with pytest.raises(FileNotFoundError, match="m_state' does not exist"):
        ka.from_pykan_checkpoint(tmp_path / "m")


def test_without_torch_the_error_says_what_to_install():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch"):
            ka.KAN([2, 2, 1]).to_pykan()
    else:
        pytest.skip("torch is installed")


def test_every_kanarray_name_sent_to_pykan_is_a_library_name():
    assert set(TO_PYKAN_NAMES) <= set(library.LIBRARY)
    assert set(FROM_PYKAN_NAMES.values()) <= set(library.LIBRARY)


# -- with torch and pykan ----------------------------------------------------------------------
@pytest.fixture
def pk(tmp_path):
    """torch and pykan with float64 as torch's default dtype (restored afterwards), and a
    checkpoint folder (pykan's prune writes its history there)."""
    torch = pytest.importorskip("torch")
    kan = pytest.importorskip("kan")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    try:
        yield SimpleNamespace(torch=torch, kan=kan, tmp=tmp_path, ckpt=str(ckpt))
    finally:
        torch.set_default_dtype(previous)


def _peer(pk, width, **kw):
    return pk.kan.KAN(width, **{"grid": 4, "k": 3, "seed": 1, "auto_save": False, "ckpt_path": pk.ckpt, **kw})


def _perturb(pk, peer, seed=0):
    """Random spline arrays, scales, biases and node affine (pykan starts them at 1 and 0)."""
    torch = pk.torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for act in peer.act_fun:
            act.coef.data = torch.randn(act.coef.shape, generator=gen) * 0.5
            act.scale_sp.data = 0.5 + torch.rand(act.scale_sp.shape, generator=gen)
        for name in ("subnode_scale", "node_scale"):
            for a in getattr(peer, name):
                a.data = 1 + 0.3 * torch.randn(a.shape, generator=gen)
        for name in ("subnode_bias", "node_bias"):
            for a in getattr(peer, name):
                a.data = 0.3 * torch.randn(a.shape, generator=gen)
    return peer


def _diff(pk, peer, model, x):
    """max |model(x) - peer(x)| (x as the kanarray model takes it)."""
    expected = peer(pk.torch.from_numpy(np.ascontiguousarray(x))).detach().numpy()
    return float(np.max(np.abs(np.asarray(model(x)) - expected)))


def _inputs(n_in, seed=0, n=300, lo=-2.5, hi=2.5):
    """Inside and outside the grid (pykan's start at [-1, 1]; after update_grid, the data's range)."""
    return np.random.default_rng(seed).uniform(lo, hi, (n, n_in))


def _dataset(pk, n_var=2, n=40):
    torch = pk.torch

    def f(x):
        return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)

    return pk.kan.utils.create_dataset(f, n_var=n_var, train_num=n, test_num=n, seed=0)


def _fit(peer, dataset):
    peer.fit(dataset, opt="LBFGS", steps=3, update_grid=True, lamb=1e-3, log=10)
    return peer


def _assert_same_arrays(a, b):
    assert a.width == b.width and a.node_width == b.node_width and a.mult_arity == b.mult_arity
    assert (a.base_fun, a.grid_range, a.dtype_name) == (b.base_fun, b.grid_range, b.dtype_name)
    for la, lb in zip(a.layers, b.layers):
        for name in la.ARRAY_NAMES:
            np.testing.assert_array_equal(getattr(la, name), getattr(lb, name), err_msg=name)
        assert la.symbolic.names == lb.symbolic.names and la.k == lb.k
        np.testing.assert_array_equal(la.symbolic.affine, lb.symbolic.affine)
        assert (la.nodes is None) == (lb.nodes is None)
        if la.nodes is not None:
            assert (la.nodes.n_add, la.nodes.arities, la.nodes.trainable) == (
                lb.nodes.n_add, lb.nodes.arities, lb.nodes.trainable)
            for name, arr in la.nodes.arrays().items():
                np.testing.assert_array_equal(arr, getattr(lb.nodes, name), err_msg=name)


def test_pykan_names_are_the_same_functions_as_kanarrays(pk):
    torch = pk.torch
    symbolic_lib = pk.kan.utils.SYMBOLIC_LIB
    assert set(FROM_PYKAN_NAMES) == set(symbolic_lib)  # every pykan name has its counterpart
    z = np.concatenate([np.linspace(0.1, 0.9, 17), -np.linspace(0.1, 0.9, 17)])
    for pykan_name, name in FROM_PYKAN_NAMES.items():
        theirs = symbolic_lib[pykan_name][0](torch.from_numpy(z)).numpy()
        ours = library.LIBRARY[name].fn(z, np)
        defined = np.isfinite(theirs)  # pykan's sqrt, log, x^1.5, 1/sqrt(x) are nan below 0
        assert defined.sum() >= 17, pykan_name
        np.testing.assert_allclose(ours[defined], theirs[defined], rtol=1e-13, atol=1e-14, err_msg=pykan_name)


@pytest.mark.parametrize("width, options", [
    ([3, 4, 2], {}),
    ([2, [2, 1], 1], {}),
    ([2, [2, 1], 1], {"mult_arity": 3, "affine_trainable": True}),
    ([3, [1, 2], [0, 1], 2], {"mult_arity": [[], [2, 3], [2], []], "k": 2}),
    ([2, 3, 1], {"base_fun": "identity", "k": 1, "grid": 6}),
    ([2, 3, 1], {"base_fun": "zero"}),
])
def test_a_pykan_model_converts_to_the_same_function(pk, width, options):
    peer = _perturb(pk, _peer(pk, list(width), **options))
    model = ka.from_pykan(peer)
    assert model.node_width == [list(w) for w in peer.width] and model.base_fun == options.get("base_fun", "silu")
    assert model.dtype_name == "float64" and model.backend == "numpy"
    assert _diff(pk, peer, model, _inputs(model.width[0])) < TOL
    trainable = options.get("affine_trainable", False)
    for l, layer in enumerate(model.layers):
        assert layer.nodes is not None and layer.nodes.trainable == trainable and not np.any(layer.bias)
        assert np.array_equal(layer.nodes.node_bias, peer.node_bias[l].detach().numpy())


def test_after_fit_with_grid_updates_prune_and_auto_symbolic(pk):
    dataset = _dataset(pk)
    peer = _fit(_peer(pk, [2, 3, 1], grid=3, noise_scale=0.3), dataset)
    grid = peer.act_fun[0].grid.detach().numpy()
    assert not np.allclose(np.diff(grid[0, 3:-3]), np.diff(grid[0, 3:-3])[0])  # the grid was adapted
    x = _inputs(2, seed=1)
    fitted = ka.from_pykan(peer)
    diffs = {"fit": _diff(pk, peer, fitted, x)}
    np.testing.assert_array_equal(fitted.layers[0].grid, grid)

    peer(dataset["train_input"])
    pruned = peer.prune(node_th=0.3, edge_th=0.15)
    smaller = ka.from_pykan(pruned)
    assert smaller.width[1] < 3 and not np.all(smaller.layers[0].mask)  # a node and an edge went
    diffs["prune"] = _diff(pk, pruned, smaller, x)

    pruned(dataset["train_input"])
    pruned.auto_symbolic(lib=["x", "x^2", "sin", "tanh", "exp"], verbose=0)
    symbolic = ka.from_pykan(pruned)
    assert all(layer.symbolic.active for layer in symbolic.layers)
    diffs["auto_symbolic"] = _diff(pk, pruned, symbolic, x)
    print("max |kanarray - pykan|:", diffs)
    assert max(diffs.values()) < TOL, diffs


def test_a_checkpoint_converts_as_the_live_model_does(pk):
    dataset = _dataset(pk)
    peer = _fit(_perturb(pk, _peer(pk, [2, [2, 1], 1], mult_arity=[[], [3], []], affine_trainable=True)), dataset)
    peer(dataset["train_input"])
    peer.fix_symbolic(0, 1, 0, "x^0.5", fit_params_bool=False)
    peer.fix_symbolic(1, 0, 0, "sin", verbose=False)
    path = pk.tmp / "saved"
    peer.saveckpt(str(path))
    model = ka.from_pykan_checkpoint(path)
    _assert_same_arrays(model, ka.from_pykan(peer))
    assert model.layers[0].symbolic.names[1][0] == "sqrt" and model.layers[0].nodes.trainable
    np.testing.assert_array_equal(model.fit_inputs, peer.cache_data.numpy())
    x = _inputs(2, seed=2, lo=0.05, hi=2.5)  # sqrt's argument stays positive where pykan's is defined
    assert _diff(pk, peer, model, x) < TOL
    float32 = ka.from_pykan_checkpoint(path, dtype="float32")
    assert float32.dtype_name == "float32"


def test_a_checkpoint_after_prune_input_names_its_base_function_as_an_object(pk):
    peer = _perturb(pk, _peer(pk, [3, 2, 1]))
    pruned = peer.prune_input(active_inputs=[0, 2], log_history=False)
    with pytest.raises(ka.PykanConversionError, match=r"input_id is \[0, 2\].*prune_input"):
        ka.from_pykan(pruned)
    path = pk.tmp / "pruned"
    pruned.saveckpt(str(path))
    assert "!!python/object:torch.nn.modules.activation.SiLU" in (pk.tmp / "pruned_config.yml").read_text()
    model = ka.from_pykan_checkpoint(path)  # the file's model takes the kept inputs
    x = _inputs(3, seed=3)
    assert model.width == [2, 2, 1]
    expected = pruned(pk.torch.from_numpy(x)).detach().numpy()
    assert np.max(np.abs(model(x[:, [0, 2]]) - expected)) < TOL


def test_kanarray_to_pykan_and_back_is_exact(pk):
    torch = pk.torch
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 2))
    y = np.sin(np.pi * x[:, :1]) * x[:, 1:]
    model = ka.KAN([2, [2, 1], 1], grid=3, mult_arity=2, affine_trainable=True, seed=2)
    model.fit(x, y, steps=2, update_grid=True, progress=False)
    model.fix_symbolic(0, 0, 1, "sin", params=(3.0, 0.1, 0.5, -0.2))
    model.fix_symbolic(1, 1, 0, "x^2", params=(1.5, 0.0, 0.7, 0.0))
    state = torch.get_rng_state()
    peer = model.to_pykan()
    assert torch.equal(torch.get_rng_state(), state)  # pykan's constructor reseeds; the state is restored
    assert torch.get_default_dtype() == torch.float64 and peer.act_fun[0].coef.dtype == torch.float64
    assert not peer.auto_save and peer.affine_trainable and peer.symbolic_fun[0].funs_name[1][0] == "sin"
    back = ka.from_pykan(peer)  # before peer(x), which makes x pykan's cache_data
    _assert_same_arrays(back, model)
    np.testing.assert_array_equal(back.fit_inputs, model.fit_inputs)
    assert _diff(pk, peer, model, _inputs(2, seed=4)) < TOL
    history = peer.fit(_dataset(pk), opt="LBFGS", steps=1, update_grid=False, log=10)  # pykan's tools work on it
    assert np.isfinite(history["train_loss"][-1])

    plain = ka.KAN([2, 3, 1], grid=4, k=2, seed=1, bias_trainable=True)
    plain.layers[1].bias[...] = 0.25
    peer = plain.to_pykan(ckpt_path=pk.ckpt)
    assert peer.ckpt_path == pk.ckpt and peer.k == 2
    _assert_same_arrays(ka.from_pykan(peer), plain)
    assert _diff(pk, peer, plain, _inputs(2, seed=5)) < TOL


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")  # pykan's formula
def test_pykans_formula_of_a_symbolic_kanarray_model(pk):
    model = ka.KAN([2, 1], seed=0)
    model.fix_symbolic(0, 0, 0, "sin", params=(2.0, 0.5, 1.5, 0.1))
    model.fix_symbolic(0, 1, 0, "exp", params=(0.5, 0.0, 2.0, -0.3))
    (formula,), variables = model.to_pykan().symbolic_formula()
    x = _inputs(2, seed=7, n=20)
    values = [float(formula.subs(dict(zip(variables, row)))) for row in x]
    np.testing.assert_allclose(values, np.asarray(model(x))[:, 0], rtol=1e-12)


def test_to_pykan_refuses_what_pykan_cannot_represent(pk, monkeypatch):
    scaled = ka.KAN([2, 2, 1])
    scaled.scale_inputs(np.zeros(2), np.full(2, 4.0))
    with pytest.raises(ka.PykanConversionError, match="scale_inputs"):
        scaled.to_pykan()
    with pytest.raises(ka.PykanConversionError, match="'linear'"):
        ka.KAN([2, 2, 1], extrapolate="linear").to_pykan()
    monkeypatch.setitem(library.LIBRARY, "sin2", dataclasses.replace(library.LIBRARY["sin"], name="sin2"))
    custom = ka.KAN([2, 2, 1])
    custom.fix_symbolic(0, 1, 0, "sin2", params=(1.0, 0.0, 1.0, 0.0))
    with pytest.raises(ka.PykanConversionError, match=r"edge \(0, 1, 0\) is the symbolic function 'sin2'"):
        custom.to_pykan()
    mixed = ka.KAN([2, [1, 1], 1])
    mixed.layers[0].nodes.trainable = True
    with pytest.raises(ka.PykanConversionError, match=r"trainable as \[True, None\]"):
        mixed.to_pykan()


def test_from_pykan_refuses_what_kanarray_cannot_hold(pk):
    both = _peer(pk, [2, 2, 1])
    both.set_mode(0, 1, 0, "sn")
    with pytest.raises(ka.PykanConversionError, match=r"layer 0: edge \(1, 0\) computes both its spline"):
        ka.from_pykan(both)
    half = _peer(pk, [2, 2, 1])
    half.set_mode(0, 1, 0, "s")
    half.symbolic_fun[0].mask.data[0, 1] = 0.5
    with pytest.raises(ka.PykanConversionError, match="symbolic mask 0.5"):
        ka.from_pykan(half)
    anonymous = _peer(pk, [2, 2, 1])
    anonymous.fix_symbolic(0, 0, 1, lambda x: x * 2, fit_params_bool=False, log_history=False)
    with pytest.raises(ka.PykanConversionError, match="'anonymous', which has no kanarray counterpart"):
        ka.from_pykan(anonymous)
    tanh = _peer(pk, [2, 2, 1], base_fun=pk.torch.nn.Tanh())
    with pytest.raises(ka.PykanConversionError, match="base_fun Tanh.. has no kanarray counterpart"):
        ka.from_pykan(tanh)
    widened = _peer(pk, [2, 2, 1])  # coef with twice the bases its grid has: no spline order fits
    widened.act_fun[0].coef.data = pk.torch.cat([widened.act_fun[0].coef.data] * 2, dim=2)
    with pytest.raises(ka.PykanConversionError, match=r"layer 0: grid \(2, 11\) and coef \(2, 2, 14\) do not form"):
        ka.from_pykan(widened)


def test_with_symbolic_enabled_off_the_symbolic_edges_are_left_out_as_in_pykan(pk):
    peer = _perturb(pk, _peer(pk, [2, 2, 1]))
    peer.set_mode(0, 1, 0, "sn")  # both branches live, but pykan's forward skips the symbolic one
    peer.symbolic_enabled = False
    model = ka.from_pykan(peer)
    assert not any(layer.symbolic.active for layer in model.layers)
    assert _diff(pk, peer, model, _inputs(2, seed=8)) < TOL


def test_a_float32_pykan_model_converts_to_float64(pk):
    torch = pk.torch
    torch.set_default_dtype(torch.float32)  # the fixture restores the default
    peer = _perturb(pk, _peer(pk, [2, [1, 1], 1]))
    assert peer.act_fun[0].coef.dtype == torch.float32
    model = ka.from_pykan(peer)
    assert model.dtype_name == "float64"
    np.testing.assert_array_equal(model.layers[0].coef, peer.act_fun[0].coef.detach().double().numpy())
    x = _inputs(2, seed=6)
    expected = peer(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(model(x), expected, atol=1e-5)


def test_checkpoint_files_are_read_safely(pk, monkeypatch):
    torch = pk.torch
    peer = _peer(pk, [2, 2, 1])
    path = pk.tmp / "m"
    peer.saveckpt(str(path))
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match="pip install pyyaml"):
        ka.from_pykan_checkpoint(path)
    monkeypatch.undo()
    torch.save({"act_fun.0.grid": SimpleNamespace(evil=True)}, str(path) + "_state")
    with pytest.raises(ka.PykanConversionError, match="weights_only=True"):
        ka.from_pykan_checkpoint(path)
    (pk.tmp / "m_config.yml").write_text("width: [[2, 0], [1, 0]]\n")
    with pytest.raises(ka.PykanConversionError, match=r"lacks \['mult_arity', 'base_fun_name'\]"):
        ka.from_pykan_checkpoint(path)
