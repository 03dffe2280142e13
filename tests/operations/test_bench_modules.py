"""`make bench` must not rot between runs: its modules import against the current code and take their options."""

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "bench.api",
        "bench.engine",
        "bench.baseline",
        "bench.urls",
        "bench.__main__",
        "bench.broker",
        "bench.soak",
        "bench.stream",
    ],
)
def test_a_benchmark_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("module", ["bench.api", "bench.engine", "bench.broker", "bench.soak", "bench.stream"])
def test_a_benchmark_prints_its_options(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m " + module in capsys.readouterr().out
