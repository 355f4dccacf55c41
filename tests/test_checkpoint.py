"""Checkpoints: bit-exact round trips across backends and dtypes, optimizer state, atomic
writes, and clear errors for truncated, corrupted, foreign and pickled files."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import kanarray as ka
from kanarray import checkpoint
from kanarray.optim import LBFGS, Adam

from helpers import host, random_model, tol

BACKENDS = ["numpy", "array_api_strict"]


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    return x, np.sin(2 * x[:, :1]) * x[:, 1:]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("target", BACKENDS)
def test_round_trip_is_bit_exact_across_backends(tmp_path, backend, target, dtype):
    pytest.importorskip("array_api_strict")
    model = random_model(backend, [2, 4, 1], grid=5, dtype=dtype)
    path = tmp_path / "model.kan"
    model.save(path)
    loaded = ka.load(path, backend=target)
    assert loaded.width == model.width and loaded.grid == model.grid and loaded.k == model.k
    assert loaded.backend == ("numpy" if target == "numpy" else loaded.backend)
    for a, b in zip(model.layers, loaded.layers):
        for name in a.ARRAY_NAMES:
            x, y = host(getattr(a, name)), host(getattr(b, name))
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes(), name
    x = np.random.default_rng(1).uniform(-1, 1, (50, 2)).astype(dtype)
    y_saved, y_loaded = host(model(model.xp.asarray(x))), host(loaded(loaded.xp.asarray(x)))
    if target == backend:
        assert y_loaded.tobytes() == y_saved.tobytes()
    else:  # same arrays, another backend's kernels: equal up to rounding
        np.testing.assert_allclose(y_loaded, y_saved, rtol=tol(dtype, 64), atol=tol(dtype, 16))


def test_load_into_another_dtype(tmp_path):
    model = random_model("numpy", [2, 3, 1], grid=4)
    model.save(tmp_path / "m.kan")
    loaded = ka.load(tmp_path / "m.kan", dtype="float32")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded.layers[0].coef, model.layers[0].coef.astype(np.float32))


@pytest.mark.parametrize("opt_name", ["adam", "lbfgs"])
def test_saved_optimizer_continues_exactly_like_an_uninterrupted_run(tmp_path, opt_name):
    x, y = _data()
    kw = dict(opt=opt_name, lr=0.01 if opt_name == "adam" else None, update_grid=False, progress=False)
    straight = ka.KAN([2, 3, 1], grid=4, seed=3)
    history = straight.fit(x, y, steps=4, **kw)
    opt = history.optimizer

    resumed = ka.KAN([2, 3, 1], grid=4, seed=3)
    first = resumed.fit(x, y, steps=2, **kw)
    resumed.save(tmp_path / "ckpt.kan", optimizer=first.optimizer)
    model = ka.load(tmp_path / "ckpt.kan")
    opt2 = ka.load_optimizer(tmp_path / "ckpt.kan", model)
    assert type(opt2) is type(opt)
    model.fit(x, y, steps=2, opt=opt2, update_grid=False, progress=False)
    for name, p in straight.parameters().items():
        np.testing.assert_array_equal(model.parameters()[name], p, err_msg=name)


def test_no_optimizer_saved_gives_none(tmp_path):
    model = random_model("numpy", [2, 3, 1])
    model.save(tmp_path / "m.kan")
    assert ka.load_optimizer(tmp_path / "m.kan", ka.load(tmp_path / "m.kan")) is None


def test_saving_an_optimizer_of_another_model_is_refused(tmp_path):
    a, b = random_model("numpy", [2, 3, 1]), random_model("numpy", [2, 3, 1])
    with pytest.raises(ValueError, match="other arrays"):
        a.save(tmp_path / "m.kan", optimizer=Adam(b.parameters()))
    assert not os.path.exists(tmp_path / "m.kan")


def test_interrupted_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.kan"
    old = random_model("numpy", [2, 3, 1], seed=1)
    old.save(path)
    before = path.read_bytes()
    original = zipfile.ZipFile.writestr
    calls = {"n": 0}

    def failing(self, name, data, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C half-way through the write
        return original(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(KeyboardInterrupt):
        random_model("numpy", [2, 3, 1], seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.kan"], "no temporary file may be left behind"
    np.testing.assert_array_equal(ka.load(path).layers[0].coef, old.layers[0].coef)


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(a, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _valid_members(tmp_path):
    path = tmp_path / "valid.kan"
    random_model("numpy", [2, 3, 1]).save(path)
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "m.kan"
    random_model("numpy", [2, 3, 1]).save(path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.kan").write_bytes(data[:cut])
        with pytest.raises(ka.CheckpointError, match="truncated|corrupted"):
            ka.load(tmp_path / "cut.kan")


def test_corrupted_array_bytes_are_refused(tmp_path):
    path = tmp_path / "m.kan"
    random_model("numpy", [2, 3, 1]).save(path)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x93NUMPY") + 140  # inside the first array's values
    data[at] ^= 0xFF
    (tmp_path / "bad.kan").write_bytes(bytes(data))
    with pytest.raises(ka.CheckpointError, match="corrupted"):
        ka.load(tmp_path / "bad.kan")


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "text.kan").write_text("hello")
    with pytest.raises(ka.CheckpointError, match="not a kanarray checkpoint"):
        ka.load(tmp_path / "text.kan")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    with pytest.raises(ka.CheckpointError, match="not a kanarray checkpoint"):
        ka.load(tmp_path / "arrays.npz")
    members = _valid_members(tmp_path)
    header = json.loads(members["kanarray.json"])
    header["format"] = "something-else"
    _write_zip(tmp_path / "tag.kan", {**members, "kanarray.json": json.dumps(header)})
    with pytest.raises(ka.CheckpointError, match="format tag"):
        ka.load(tmp_path / "tag.kan")
    with pytest.raises(FileNotFoundError):
        ka.load(tmp_path / "missing.kan")


def test_future_format_version_is_refused(tmp_path):
    members = _valid_members(tmp_path)
    header = json.loads(members["kanarray.json"])
    header["version"] = checkpoint.VERSION + 1
    _write_zip(tmp_path / "new.kan", {**members, "kanarray.json": json.dumps(header)})
    with pytest.raises(ka.CheckpointError, match="version"):
        ka.load(tmp_path / "new.kan")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    members = _valid_members(tmp_path)
    name = "model/layers.0.coef.npy"
    members[name] = _npy(np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    _write_zip(tmp_path / "obj.kan", members)
    with pytest.raises(ka.CheckpointError, match="without pickle"):
        ka.load(tmp_path / "obj.kan")


def test_shapes_and_values_are_checked(tmp_path):
    members = _valid_members(tmp_path)
    bad_shape = dict(members)
    bad_shape["model/layers.0.coef.npy"] = _npy(np.zeros((2, 3, 2)))
    _write_zip(tmp_path / "shape.kan", bad_shape)
    with pytest.raises(ka.CheckpointError, match="manifest"):
        ka.load(tmp_path / "shape.kan")
    nan = dict(members)
    coef = np.lib.format.read_array(io.BytesIO(members["model/layers.0.coef.npy"]))
    coef[0, 0, 0] = np.nan
    nan["model/layers.0.coef.npy"] = _npy(coef)
    _write_zip(tmp_path / "nan.kan", nan)
    with pytest.raises(ka.CheckpointError, match="NaN"):
        ka.load(tmp_path / "nan.kan")
    ints = dict(members)
    ints["model/layers.0.bias.npy"] = _npy(np.zeros(3, dtype=np.int64))
    _write_zip(tmp_path / "int.kan", ints)
    with pytest.raises(ka.CheckpointError, match="floating point"):
        ka.load(tmp_path / "int.kan")
    missing = {k: v for k, v in members.items() if k != "model/layers.1.grid.npy"}
    _write_zip(tmp_path / "missing.kan", missing)
    with pytest.raises(ka.CheckpointError, match="missing"):
        ka.load(tmp_path / "missing.kan")


def test_lbfgs_state_round_trip(tmp_path):
    x, y = _data()
    model = ka.KAN([2, 3, 1], grid=4, seed=0)
    history = model.fit(x, y, steps=2, progress=False)
    opt = history.optimizer
    assert isinstance(opt, LBFGS) and opt.s_hist
    model.save(tmp_path / "m.kan", optimizer=opt)
    opt2 = ka.load_optimizer(tmp_path / "m.kan", ka.load(tmp_path / "m.kan"))
    assert opt2.n_iter == opt.n_iter and opt2.rho == opt.rho and opt2.hyper() == opt.hyper()
    for a, b in zip(opt.s_hist + opt.y_hist, opt2.s_hist + opt2.y_hist):
        np.testing.assert_array_equal(a, b)


def test_saved_files_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        model = ka.KAN([2, 3, 1], seed=0)
        model.save(tmp_path / "m.kan")
        assert stat.S_IMODE(os.stat(tmp_path / "m.kan").st_mode) == 0o644
    finally:
        os.umask(mask)


def test_overwriting_a_saved_file_keeps_its_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "m.kan"
    ka.KAN([2, 3, 1], seed=0).save(path)
    os.chmod(path, 0o600)
    ka.KAN([2, 3, 1], seed=1).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for name, value in ka.KAN([2, 3, 1], seed=1).parameters().items():
        np.testing.assert_array_equal(np.asarray(ka.load(path).parameters()[name]), np.asarray(value))


def test_umask_is_read_without_changing_it():
    import os

    from kanarray._atomic import _umask

    mask = os.umask(0o027)
    try:
        assert _umask() == 0o027
        assert _umask() == 0o027  # unchanged by reading it
    finally:
        os.umask(mask)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from kanarray._atomic import atomic_write

    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as fh:
            fh.write(b"new, half written")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
