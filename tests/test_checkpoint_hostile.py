"""Hostile and wrong checkpoints: zip bombs, oversized headers, duplicate members, foreign
compressions, encryption, deep JSON, malformed manifests, and fields that parse but are wrong.
Each must give a CheckpointError (or, for a file too big for the memory cap, a MemoryLimitError)
before anything large is decompressed."""

from __future__ import annotations

import io
import json
import math
import struct
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from helpers import host, random_model

import kanarray as ka
from kanarray import config
from kanarray.resources import MemoryLimitError


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _members(tmp_path, model=None, optimizer=None) -> dict:
    path = tmp_path / "source.kan"
    (model or random_model("numpy", [2, 3, 1])).save(path, optimizer=optimizer)
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _header(members) -> dict:
    return json.loads(members["kanarray.json"])


def _write(path, members, compression=zipfile.ZIP_STORED, header=None):
    """A zip of ``members`` (name -> bytes), the header replaced by ``header`` (a dict) if given."""
    if header is not None:
        members = {**members, "kanarray.json": json.dumps(header).encode()}
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _load_error(path, match, **kwargs):
    with pytest.raises(ka.CheckpointError, match=match) as info:
        ka.load(path, **kwargs)
    return str(info.value)


def _patch_member_headers(data: bytes, name: str, *, flag=None, method=None) -> bytes:
    """``data`` (a zip) with member ``name``'s general-purpose flags or compression method
    overwritten, in its local header and its central-directory entry alike."""
    data = bytearray(data)
    encoded = name.encode()
    for signature, flag_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30), (b"PK\x01\x02", 8, 10, 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(encoded)] == encoded:
                if flag is not None:
                    struct.pack_into("<H", data, at + flag_at, flag)
                if method is not None:
                    struct.pack_into("<H", data, at + method_at, method)
            at = data.find(signature, at + 4)
    return bytes(data)


# -- sizes: nothing big is decompressed ---------------------------------------------------------

def test_a_member_declaring_more_than_its_manifest_shape_is_refused_before_decompressing(tmp_path):
    members = _members(tmp_path)
    # 64 MiB of zeros after a valid .npy header: compresses to ~64 KiB
    members["model/layers.0.coef.npy"] = members["model/layers.0.coef.npy"] + bytes(64 * 2**20)
    path = _write(tmp_path / "bomb.kan", members, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        _load_error(path, r"array 'model/layers.0.coef' declares \d+ bytes, more than the \d+ it can hold")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"loading decompressed the bomb: peak {peak} bytes"


def test_manifest_shapes_must_be_the_ones_width_and_k_imply(tmp_path):
    members = _members(tmp_path)
    header = _header(members)
    header["arrays"]["model/layers.0.bias"]["shape"] = [10**9]
    members["model/layers.0.bias.npy"] = b"\x93NUMPY" + bytes(100)
    _load_error(_write(tmp_path / "big.kan", members, header=header), r"layer 0: array bias must have shape \(3,\)")


def test_a_consistent_but_huge_manifest_hits_the_memory_cap_before_decompressing(tmp_path):
    members = _members(tmp_path)
    header = _header(members)
    n, m, k = 30000, 30000, 3
    header["model"]["width"] = [n, m]
    header["model"]["k"], header["model"]["grid_range"] = [k], [[-1, 1]]
    header["model"]["symbolic"] = None
    shapes = dict(grid=[n, 12], coef=[n, m, 8], scale_base=[n, m], scale_sp=[n, m], mask=[n, m], bias=[m])
    header["arrays"] = {f"model/layers.0.{name}": {"shape": s, "dtype": "float64"} for name, s in shapes.items()}
    members = {f"model/layers.0.{name}.npy": b"" for name in shapes}
    path = _write(tmp_path / "huge.kan", members, header=header)
    with config.override(max_memory=2**30):
        start = time.perf_counter()
        with pytest.raises(MemoryLimitError, match=r"loading .* would need about 2\d\d GiB.*limit of 1 GiB"):
            ka.load(path)
        assert time.perf_counter() - start < 2


def test_members_the_model_does_not_use_are_not_read(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (32, 2))
    model = ka.KAN([2, 3, 1], grid=4, seed=0)
    history = model.fit(x, np.sin(x[:, :1]), steps=1, opt="adam", update_grid=False, progress=False)
    members = _members(tmp_path, model, optimizer=history.optimizer)
    optimizer_member = next(name for name in members if name.startswith("optimizer/"))
    members[optimizer_member] = b"not an array at all"
    members["junk/unused.bin"] = bytes(32 * 2**20)
    path = _write(tmp_path / "extra.kan", members, compression=zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        loaded = ka.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, "an unused member was decompressed"
    np.testing.assert_array_equal(host(loaded.layers[0].coef), host(model.layers[0].coef))
    with pytest.raises(ka.CheckpointError, match="optimizer/.*corrupted"):  # the optimizer's reader does read it
        ka.load_optimizer(path, loaded)


def test_optimizer_arrays_larger_than_the_model_are_refused(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (32, 2))
    model = ka.KAN([2, 3, 1], grid=4, seed=0)
    history = model.fit(x, np.sin(x[:, :1]), steps=1, opt="adam", update_grid=False, progress=False)
    members = _members(tmp_path, model, optimizer=history.optimizer)
    header = _header(members)
    name = next(name for name in header["arrays"] if name.startswith("optimizer/"))
    header["arrays"][name]["shape"] = [10**8]
    path = _write(tmp_path / "opt.kan", members, header=header)
    with pytest.raises(ka.CheckpointError, match="larger than the model's"):
        ka.load_optimizer(path, ka.load(path))


def test_a_header_of_whitespace_is_refused_before_decompressing(tmp_path):
    members = _members(tmp_path)
    members["kanarray.json"] = members["kanarray.json"] + b" " * (256 * 2**20)
    path = _write(tmp_path / "blank.kan", members, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2 * 2**20
    start = time.perf_counter()
    _load_error(path, r"the checkpoint header declares \d+ bytes, more than the \d+ it can hold")
    assert time.perf_counter() - start < 2


# -- the archive itself -------------------------------------------------------------------------

def test_duplicate_member_names_are_refused(tmp_path):
    members = _members(tmp_path)
    path = tmp_path / "dup.kan"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            zf.writestr("model/layers.0.bias.npy", _npy(np.full(3, 7.0)))  # the last would win
    _load_error(path, "two members named 'model/layers.0.bias.npy'")


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_deflate_bzip2_and_lzma_members_load_exactly(tmp_path, compression):
    model = random_model("numpy", [2, 3, 1])
    path = _write(tmp_path / "packed.kan", _members(tmp_path, model), compression=compression)
    loaded = ka.load(path)
    for a, b in zip(model.layers, loaded.layers):
        for name in a.ARRAY_NAMES:
            assert host(getattr(a, name)).tobytes() == host(getattr(b, name)).tobytes()


def test_unsupported_compression_is_a_checkpoint_error(tmp_path):
    data = _write(tmp_path / "m.kan", _members(tmp_path)).read_bytes()
    (tmp_path / "odd.kan").write_bytes(_patch_member_headers(data, "model/layers.0.coef.npy", method=99))
    _load_error(tmp_path / "odd.kan", "unsupported compression method 99")


def test_encrypted_members_are_a_checkpoint_error(tmp_path):
    data = _write(tmp_path / "m.kan", _members(tmp_path)).read_bytes()
    (tmp_path / "enc.kan").write_bytes(_patch_member_headers(data, "model/layers.0.coef.npy", flag=0x1))
    _load_error(tmp_path / "enc.kan", "is encrypted")
    (tmp_path / "enc_header.kan").write_bytes(_patch_member_headers(data, "kanarray.json", flag=0x1))
    _load_error(tmp_path / "enc_header.kan", "header is encrypted")


def test_deeply_nested_header_is_a_checkpoint_error(tmp_path):
    members = _members(tmp_path)
    depth = 200000
    text = members["kanarray.json"].decode()
    deep = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    members["kanarray.json"] = deep.encode()
    _load_error(_write(tmp_path / "deep.kan", members, compression=zipfile.ZIP_DEFLATED), "nested too deeply")


@pytest.mark.parametrize("entry", [[2, 3], "float64", None, 7, {"shape": "23", "dtype": "float64"},
                                   {"shape": [2, True], "dtype": "float64"}, {"shape": [2, -1], "dtype": "float64"},
                                   {"shape": [2, 3], "dtype": "object"}, {"shape": [2, 3]}])
def test_malformed_manifest_entries_are_checkpoint_errors(tmp_path, entry):
    members = _members(tmp_path)
    header = _header(members)
    header["arrays"]["model/layers.0.mask"] = entry
    _load_error(_write(tmp_path / "entry.kan", members, header=header), "malformed manifest entry")


@pytest.mark.parametrize("manifest", [[], "arrays", None])
def test_a_manifest_that_is_not_a_mapping_is_a_checkpoint_error(tmp_path, manifest):
    members = _members(tmp_path)
    header = _header(members)
    header["arrays"] = manifest
    _load_error(_write(tmp_path / "manifest.kan", members, header=header), "no model or array manifest")


@pytest.mark.parametrize("header", [[1, 2], "text", 3])
def test_a_header_that_is_not_an_object_is_a_checkpoint_error(tmp_path, header):
    members = {**_members(tmp_path), "kanarray.json": json.dumps(header).encode()}
    _load_error(_write(tmp_path / "h.kan", members), "malformed checkpoint header")


def test_truncated_data_and_bad_magic_are_corruption_not_pickle(tmp_path):
    members = _members(tmp_path)
    name = "model/layers.0.coef.npy"
    cut = dict(members)
    cut[name] = members[name][:-16]
    message = _load_error(_write(tmp_path / "cut.kan", cut), "corrupted.*truncated")
    assert "pickle" not in message
    magic = dict(members)
    magic[name] = b"NOTNPY" + members[name][6:]
    message = _load_error(_write(tmp_path / "magic.kan", magic), r"corrupted \(not an \.npy array")
    assert "pickle" not in message
    garbage = dict(members)
    garbage[name] = members[name][:10] + b"{'descr': <f8, oops" + members[name][29:]
    message = _load_error(_write(tmp_path / "hdr.kan", garbage), "corrupted")
    assert "pickle" not in message


# -- fields that parse but are wrong ----------------------------------------------------------

@pytest.mark.parametrize("field, value, match", [
    ("base_fun", "relu", "base_fun must be one of"),
    ("seed", "abc", "seed must be a non-negative integer"),
    ("seed", -1, "seed must be a non-negative integer"),
    ("seed", 1.5, "seed must be a non-negative integer"),
    ("bias_trainable", "false", "bias_trainable must be True or False"),
    ("bias_trainable", 0, "bias_trainable must be True or False"),
    ("grid_range", [[-1, 1], [float("nan"), 1]], "grid_range of layer 1 must be finite with lo < hi"),
    ("grid_range", [[1, -1], [-1, 1]], "grid_range of layer 0 must be finite with lo < hi"),
    ("grid_range", [[-1e308, 1e308], [-1, 1]], "too wide"),
    ("grid_range", [[-1, 1]], "one \\(lo, hi\\) per layer"),
    ("width", [2, True, 1], r"width\[1\] must be an integer"),
    ("width", "231", "list of layer sizes"),
    ("k", [3, 10**6], "k of layer 1 must be an integer from 0 to 20"),
    ("k", [3], "one order per layer"),
    ("k", "33", "one order per layer"),
    ("dtype", "float16", "dtype must be one of"),
    ("extrapolate", "cubic", "extrapolate must be one of"),
    ("symbolic", [[[1, None, None], [None, None, None]], [[None], [None], [None]]], "strings or null"),
    ("symbolic", "x", "one table of names per layer"),
])
def test_wrong_model_fields_are_refused_with_the_constructors_checks(tmp_path, field, value, match):
    members = _members(tmp_path)
    header = _header(members)
    header["model"][field] = value
    _load_error(_write(tmp_path / "field.kan", members, header=header), match)


def test_missing_model_fields_are_named(tmp_path):
    members = _members(tmp_path)
    header = _header(members)
    del header["model"]["seed"]
    _load_error(_write(tmp_path / "noseed.kan", members, header=header), "no 'seed'")


def test_decreasing_knots_are_refused(tmp_path):
    members = _members(tmp_path)
    name = "model/layers.0.grid.npy"
    grid = np.lib.format.read_array(io.BytesIO(members[name]))
    grid[1, 4], grid[1, 5] = grid[1, 5], grid[1, 4]
    members[name] = _npy(grid)
    _load_error(_write(tmp_path / "knots.kan", members), "layer 0: .*row 1 decrease at position 5")


def test_repeated_knots_made_by_update_grid_still_load(tmp_path):
    model = ka.KAN([1, 2, 1], grid=5, seed=0)
    x = np.repeat(np.array([[-0.5], [0.0], [0.5]]), 20, axis=0)
    model.update_grid(x, grid_eps=0.0)
    grid = host(model.layers[0].grid)
    assert np.any(np.diff(grid, axis=1) == 0), "the setup should produce repeated knots"
    model.save(tmp_path / "tied.kan")
    loaded = ka.load(tmp_path / "tied.kan")
    np.testing.assert_array_equal(host(loaded.layers[0].grid), grid)


def test_a_cast_to_float32_that_overflows_is_refused(tmp_path):
    members = _members(tmp_path)
    name = "model/layers.0.coef.npy"
    coef = np.lib.format.read_array(io.BytesIO(members[name]))
    coef[0, 1, 2] = 1e300
    members[name] = _npy(coef)
    path = _write(tmp_path / "big.kan", members)
    assert np.all(np.isfinite(host(ka.load(path).layers[0].coef)))  # fine in the saved float64
    _load_error(path, "'model/layers.0.coef' holds values too large for float32", dtype="float32")


def test_a_symbolic_name_on_a_live_spline_edge_is_refused(tmp_path):
    members = _members(tmp_path)
    header = _header(members)
    header["model"]["symbolic"][0][1][2] = "x^2"  # the edge's mask is still 1
    _load_error(_write(tmp_path / "sym.kan", members, header=header),
                r"layer 0: edge \(1, 2\) is symbolic \('x\^2'\) but its spline is live")


def test_a_properly_fixed_symbolic_edge_loads(tmp_path):
    model = ka.KAN([2, 3, 1], seed=0)
    model.fix_symbolic(0, 1, 2, "x^2", params=(1.0, 0.0, 1.0, 0.0))
    model.save(tmp_path / "sym.kan")
    loaded = ka.load(tmp_path / "sym.kan")
    assert loaded.layers[0].symbolic.names[1][2] == "x^2"
    x = np.random.default_rng(0).uniform(-1, 1, (16, 2))
    np.testing.assert_array_equal(loaded(x), model(x))


def test_an_old_style_config_still_loads(tmp_path):
    """A version 1 header without the symbolic, extrapolate and bias_trainable fields (older
    kanarray) loads with their defaults."""
    model = random_model("numpy", [2, 3, 1])
    members = _members(tmp_path, model)
    header = _header(members)
    for field in ("symbolic", "extrapolate", "bias_trainable"):
        del header["model"][field]
    header["arrays"] = {k: v for k, v in header["arrays"].items() if not k.endswith("sym_affine")}
    members = {k: v for k, v in members.items() if not k.endswith("sym_affine.npy")}
    assert header["version"] == 1
    loaded = ka.load(_write(tmp_path / "old.kan", members, header=header))
    assert loaded.extrapolate == "spline" and loaded.bias_trainable is False
    x = np.random.default_rng(0).uniform(-1, 1, (16, 2))
    np.testing.assert_array_equal(loaded(x), model(x))


def test_version_2_with_an_input_scaling_still_loads(tmp_path):
    model = random_model("numpy", [2, 3, 1])
    model.scale_inputs([0.0, -2.0], [4.0, 2.0])
    model.save(tmp_path / "v2.kan")
    with zipfile.ZipFile(tmp_path / "v2.kan") as zf:
        assert json.loads(zf.read("kanarray.json"))["version"] == 2
    loaded = ka.load(tmp_path / "v2.kan")
    x = np.random.default_rng(0).uniform(-1, 3, (16, 2))
    np.testing.assert_array_equal(loaded(x), model(x))
    assert math.isclose(float(loaded.input_scaling[1][0]), float(model.input_scaling[1][0]))
