"""kanarray.config: the KANARRAY_* switches, read once, re-read by reload(), set by override()."""

from __future__ import annotations

import subprocess
import sys

import pytest

import array_api_compat.numpy as npx
from kanarray import config
from kanarray.backends import get_kernels


@pytest.fixture
def restored(monkeypatch):
    """The test's environment changes are undone and config re-read afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    config.reload()


def test_defaults_are_all_on():
    assert config.from_environ({}) == config.Config(numba=True, cupy_elementwise=True, cuda_graphs=True, nccl=True)
    assert set(config.ENVIRONMENT) == {"numba", "cupy_elementwise", "cuda_graphs", "nccl"}


@pytest.mark.parametrize("value,want", [("0", False), ("1", True), ("TRUE", True), (" off ", False), ("No", False),
                                        ("yes", True), ("On", True), ("false", False), ("", True)])
def test_accepted_values(value, want):
    for field, variable in config.ENVIRONMENT.items():
        assert getattr(config.from_environ({variable: value}), field) is want


@pytest.mark.parametrize("value", ["2", "enabled", "0.0", "y"])
def test_invalid_value_names_the_variable(value, restored):
    with pytest.raises(ValueError, match="KANARRAY_CUDA_GRAPHS.*1/true/yes/on.*0/false/no/off"):
        config.from_environ({"KANARRAY_CUDA_GRAPHS": value})
    restored.setenv("KANARRAY_NUMBA", value)
    with pytest.raises(ValueError, match="KANARRAY_NUMBA"):
        config.reload()


def test_read_once_until_reload(restored):
    restored.delenv("KANARRAY_NCCL", raising=False)
    assert config.reload().nccl
    restored.setenv("KANARRAY_NCCL", "0")
    assert config.current().nccl  # cached: the change is not seen yet
    assert not config.reload().nccl
    assert config.current() is config.current()


def test_reload_and_override_rebuild_the_kernels(restored):
    pytest.importorskip("numba")
    restored.setenv("KANARRAY_NUMBA", "0")
    config.reload()
    assert get_kernels(npx).fused is False
    with config.override(numba=True) as inside:
        assert inside.numba and config.current() is inside
        assert get_kernels(npx).fused is True
    assert not config.current().numba
    assert get_kernels(npx).fused is False
    restored.setenv("KANARRAY_NUMBA", "1")
    config.reload()
    assert get_kernels(npx).fused is True


def test_override_restores_on_error_and_checks_its_fields():
    before = config.current()
    with pytest.raises(RuntimeError):
        with config.override(cuda_graphs=False, nccl=False):
            assert not config.current().cuda_graphs and not config.current().nccl
            assert config.current().numba == before.numba
            raise RuntimeError
    assert config.current() == before
    with pytest.raises(TypeError, match="unknown field"):
        with config.override(numbaa=False):
            pass
    with pytest.raises(TypeError, match="bool"):
        with config.override(numba="0"):
            pass
    assert config.current() == before


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        config.current().numba = False


def test_importing_config_alone_reads_nothing_heavy():
    """kanarray.config by itself (its file, outside the package) imports neither numpy nor the
    backends, and reads the environment only when asked."""
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('c', sys.argv[1]); "
            "m = sys.modules['c'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "assert 'numpy' not in sys.modules and m._current is None; print(m.current())")
    out = subprocess.run([sys.executable, "-c", code, config.__file__], capture_output=True, text=True,
                         env={"KANARRAY_NUMBA": "off"}, check=True)
    assert "numba=False" in out.stdout
