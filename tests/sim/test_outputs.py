"""Writing outputs: a failure at write time (after the up-front check passed) is still a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import ConfigError
from sim.plot import plot
from sim.report import write_json


def test_write_json_into_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        write_json(tmp_path, {"scenarios": []})


def test_write_json_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the directory"):
        write_json(tmp_path / "file" / "sub" / "out.json", {"scenarios": []})


def test_plot_into_a_directory_is_a_config_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken.png"
    taken.mkdir()
    with pytest.raises(ConfigError, match="cannot write"):
        plot([], taken)
