"""Variable names (``KAN.input_names`` / ``output_names``, ``kanarray.names``): validation, what keeps
them (save/load, pruning, refine, ``to``, ``from_layers``), the ONNX metadata round trip, and
``kanarray predict`` picking columns by name, passing an ID through and serving a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kanarray as ka
from kanarray.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parent.parent


def _named(width=(3, 4, 1), inputs=("a", "b", "c"), outputs=("y",), seed=0):
    model = ka.KAN(list(width), grid=4, seed=seed)
    model.input_names, model.output_names = inputs, outputs
    return model


# -- the attribute --------------------------------------------------------------------------------


@pytest.mark.parametrize("names, message", [
    (("a", "b"), "lists 2 names for 3 variables"),
    (("a", "a", "b"), "distinct; listed more than once: \\['a'\\]"),
    (("a", "", "c"), "non-empty strings"),
    (("a", 1, "c"), "non-empty strings"),
    ("abc", "must be a list of 3 strings or None, got str"),
])
def test_bad_names_are_refused_and_change_nothing(names, message):
    model = _named()
    with pytest.raises(ValueError, match=message):
        model.input_names = names
    assert model.input_names == ("a", "b", "c")


def test_names_default_to_none_and_are_stored_as_tuples():
    model = ka.KAN([2, 3, 2], grid=3)
    assert model.input_names is None and model.output_names is None
    model.input_names, model.output_names = ["u", "v"], ["p", "q"]
    assert model.input_names == ("u", "v") and model.output_names == ("p", "q")
    with pytest.raises(ValueError, match="output_names lists 1 names for 2 variables"):
        model.output_names = ["p"]


def test_names_survive_save_load_prune_refine_and_to(tmp_path):
    model = _named()
    x = np.random.default_rng(0).uniform(-1, 1, (64, 3))
    model.update_grid(x)
    model.save(tmp_path / "m.kan")
    loaded = ka.load(tmp_path / "m.kan", dtype="float32")
    assert (loaded.input_names, loaded.output_names) == (("a", "b", "c"), ("y",))
    for derived in (model.prune(node_th=0.0, edge_th=0.0), model.prune_to_width([3, 2, 1]), model.refine(8),
                    model.to(dtype="float32")):
        assert (derived.input_names, derived.output_names) == (("a", "b", "c"), ("y",))


def test_from_layers_keeps_names_only_when_the_count_fits():
    model = _named()
    same = ka.KAN.from_layers(model.layers, like=model)
    assert same.input_names == ("a", "b", "c")
    fewer = [model.layers[0].subset([0, 2], list(range(4))), model.layers[1]]  # input b dropped
    assert ka.KAN.from_layers(fewer, like=model).input_names is None  # whose names? unknown, so none
    kept = ka.KAN.from_layers(fewer, like=model, input_names=["a", "c"])
    assert kept.input_names == ("a", "c") and kept.output_names == ("y",)
    with pytest.raises(ValueError, match="input_names lists 3 names for 2 variables"):
        ka.KAN.from_layers(fewer, like=model, input_names=["a", "b", "c"])


# -- checkpoints ----------------------------------------------------------------------------------


def _header(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("kanarray.json"))


def _rewrite_header(path, change) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    header = json.loads(members["kanarray.json"])
    change(header["model"])
    members["kanarray.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_checkpoint_writes_names_only_when_there_are_some(tmp_path):
    ka.KAN([2, 3, 1], grid=3).save(tmp_path / "plain.kan")
    assert not {"input_names", "output_names"} & set(_header(tmp_path / "plain.kan")["model"])  # as before
    assert ka.load(tmp_path / "plain.kan").input_names is None
    _named().save(tmp_path / "named.kan")
    model = _header(tmp_path / "named.kan")["model"]
    assert model["input_names"] == ["a", "b", "c"] and model["output_names"] == ["y"]


@pytest.mark.parametrize("field, value, message", [
    ("input_names", ["a", "b"], "input_names lists 2 names for 3 variables"),
    ("input_names", ["a", "a", "b"], "distinct"),
    ("output_names", [7], "non-empty strings"),
    ("output_names", "y", "must be a list"),
])
def test_checkpoint_reader_validates_the_names(tmp_path, field, value, message):
    path = tmp_path / "m.kan"
    _named().save(path)
    _rewrite_header(path, lambda model: model.__setitem__(field, value))
    with pytest.raises(CheckpointError, match=f"malformed model config .*{message}"):
        ka.load(path)


# -- ONNX metadata --------------------------------------------------------------------------------


def test_onnx_metadata_round_trip(tmp_path):
    pytest.importorskip("onnxruntime")
    from kanarray.export import OnnxModel, to_onnx

    proto = to_onnx(_named(), tmp_path / "named.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["input_names"]) == ["a", "b", "c"] and json.loads(props["output_names"]) == ["y"]
    served = OnnxModel(tmp_path / "named.onnx", provider="cpu")
    assert (served.input_names, served.output_names) == (("a", "b", "c"), ("y",))
    plain = to_onnx(ka.KAN([3, 2, 1], grid=3), tmp_path / "plain.onnx")
    assert not {"input_names", "output_names"} & {p.key for p in plain.metadata_props}
    assert OnnxModel(tmp_path / "plain.onnx", provider="cpu").input_names is None


def test_onnx_model_refuses_malformed_name_metadata(tmp_path):
    pytest.importorskip("onnxruntime")
    from kanarray.export import OnnxModel, to_onnx

    proto = to_onnx(_named())
    for p in proto.metadata_props:
        if p.key == "input_names":
            p.value = json.dumps(["a", "a", "c"])
    (tmp_path / "bad.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="malformed input_names metadata .*distinct"):
        OnnxModel(tmp_path / "bad.onnx", provider="cpu")


# -- reading prediction inputs ---------------------------------------------------------------------


def test_read_prediction_inputs_by_name_ignores_other_columns(tmp_path):
    from kanarray.tabular import read_prediction_inputs

    path = tmp_path / "h.csv"
    path.write_text("note,c,id,a,b\nfirst,3,r1,1,2\nsecond,6,r2,4,5\n")
    x, ids = read_prediction_inputs(path, names=("a", "b", "c"), id_column="id")
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
    assert ids == ["r1", "r2"]
    with pytest.raises(ValueError, match="no column\\(s\\) 'd' that the model takes as inputs"):
        read_prediction_inputs(path, names=("a", "d", "c"))
    with pytest.raises(ValueError, match="no ID column 'key'; available columns: 'note', 'c'"):
        read_prediction_inputs(path, names=("a", "b", "c"), id_column="key")
    (tmp_path / "plain.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="ID column \\('id'\\) needs a header row"):
        read_prediction_inputs(tmp_path / "plain.csv", id_column="id")
    x, ids = read_prediction_inputs(tmp_path / "plain.csv", names=("a", "b"))  # no header: by position
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert ids is None


# -- kanarray fit, then kanarray predict, through the console script --------------------------------


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "kanarray", *map(str, args)], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model fitted by ``kanarray fit`` on columns a, b, c -> target, saved and exported (float32)."""
    root = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (80, 3))
    y = x[:, 0] + 0.5 * x[:, 1] ** 2
    with open(root / "train.csv", "w") as f:
        f.write("a,b,c,target\n")
        f.writelines(f"{r[0]:.17g},{r[1]:.17g},{r[2]:.17g},{t:.17g}\n" for r, t in zip(x, y))
    done = _cli("fit", root / "train.csv", "--target", "target", "--steps", "3", "--out", root / "m.kan",
                "--onnx", root / "m.onnx")
    assert done.returncode == 0, done.stderr
    with open(root / "holdout.csv", "w") as f:  # the target still in, an ID, columns in another order
        f.write("target,id,c,b,a\n")
        f.writelines(f"{t:.17g},row-{i},{r[2]:.17g},{r[1]:.17g},{r[0]:.17g}\n" for i, (r, t) in enumerate(zip(x, y)))
    return root, x


def _read_output(path):
    lines = Path(path).read_text().splitlines()
    cells = [line.split(",") for line in lines[1:]]
    return lines[0], [c[0] for c in cells], np.array([[float(v) for v in c[1:]] for c in cells])


@pytest.mark.slow
def test_fit_names_the_model_and_predict_picks_columns_by_name(trained, tmp_path):
    root, x = trained
    model = ka.load(root / "m.kan")
    assert (model.input_names, model.output_names) == (("a", "b", "c"), ("target",))
    done = _cli("predict", root / "m.onnx", root / "holdout.csv", "-o", tmp_path / "y.csv", "--id", "id")
    assert done.returncode == 0, done.stderr
    header, ids, y = _read_output(tmp_path / "y.csv")
    assert header == "id,target" and ids == [f"row-{i}" for i in range(len(x))]
    np.testing.assert_allclose(y, np.asarray(model(x)), rtol=1e-5, atol=1e-5)  # float32 graph
    done = _cli("predict", root / "m.onnx", root / "holdout.csv", "-o", tmp_path / "plain.csv")
    assert done.returncode == 0, done.stderr
    header, _, _ = _read_output(tmp_path / "plain.csv")
    assert header == "target"


@pytest.mark.slow
def test_predict_serves_a_checkpoint_natively(trained, tmp_path):
    root, x = trained
    done = _cli("predict", root / "m.kan", root / "holdout.csv", "-o", tmp_path / "y.csv", "--id", "id")
    assert done.returncode == 0, done.stderr
    assert "(native)" in done.stdout and "protobuf" not in done.stderr
    header, ids, y = _read_output(tmp_path / "y.csv")
    assert header == "id,target" and ids[0] == "row-0"
    np.testing.assert_array_equal(y, np.asarray(ka.load(root / "m.kan")(x)))  # %.17g round-trips float64
    done = _cli("predict", root / "m.kan", root / "holdout.csv", "-o", tmp_path / "z.csv", "--provider", "cuda")
    assert done.returncode == 2 and "is a checkpoint, which runs natively" in done.stderr


@pytest.mark.slow
def test_predict_errors_name_what_is_missing(trained, tmp_path):
    root, _ = trained
    (tmp_path / "short.csv").write_text("a,c,id\n0.1,0.2,r0\n")
    done = _cli("predict", root / "m.onnx", tmp_path / "short.csv", "-o", tmp_path / "y.csv")
    assert done.returncode == 2 and "no column(s) 'b' that the model takes as inputs (its inputs: a, b, c)" in \
        done.stderr
    done = _cli("predict", root / "m.onnx", root / "holdout.csv", "-o", tmp_path / "y.npy", "--id", "id")
    assert done.returncode == 2 and "is written only to a .csv output" in done.stderr
    assert not (tmp_path / "y.csv").exists() and not (tmp_path / "y.npy").exists()


def test_predict_on_a_damaged_checkpoint_says_so_not_protobuf(tmp_path, capsys):
    from kanarray.cli import main

    (tmp_path / "x.csv").write_text("a,b\n0.1,0.2\n")
    (tmp_path / "junk.kan").write_text("not a model")
    assert main(["predict", str(tmp_path / "junk.kan"), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv")]) == 2
    err = capsys.readouterr().err
    assert "is not a kanarray checkpoint" in err and "protobuf" not in err.lower()


def test_predict_quotes_ids_and_names_that_need_it(tmp_path, capsys):
    from kanarray.cli import main

    model = ka.KAN([2, 3, 1], grid=3, seed=1)
    model.input_names, model.output_names = ["a", "b"], ["price, EUR"]
    model.save(tmp_path / "m.kan")
    (tmp_path / "x.csv").write_text('id,b,a\n"x,1",0.2,0.1\n"q""2",0.4,0.3\n')
    assert main(["predict", str(tmp_path / "m.kan"), str(tmp_path / "x.csv"), "-o", str(tmp_path / "y.csv"),
                 "--id", "id"]) == 0
    lines = (tmp_path / "y.csv").read_text().splitlines()
    assert lines[0] == 'id,"price, EUR"' and lines[1].startswith('"x,1",') and lines[2].startswith('"q""2",')
    expected = np.asarray(model(np.array([[0.1, 0.2], [0.3, 0.4]])))[:, 0]  # columns a, b by name
    np.testing.assert_array_equal([float(line.rsplit(",", 1)[1]) for line in lines[1:]], expected)
