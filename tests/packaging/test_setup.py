"""setup.py: a regular install compiles router/ and streams/, an editable one never does, and an
install that cannot compile ships the interpreted packages instead of failing (or of shipping a
module's shim without the shared library it loads).

The compiled path itself is built by bench/compiled.py through this same setup.py, and
`dev.py test` runs the routing, wire and worker tests on what it builds."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("router", "streams", "setup.py", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def setup_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_router_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() runs only as __main__
    return module


@pytest.mark.parametrize(("value", "mode"), [(None, "auto"), ("", "auto"), (" AUTO ", "auto"), ("0", "0"), ("1", "1")])
def test_compile_mode_reads_router_compile(
    setup_py: ModuleType, monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str
) -> None:
    if value is None:
        monkeypatch.delenv("ROUTER_COMPILE", raising=False)
    else:
        monkeypatch.setenv("ROUTER_COMPILE", value)
    assert setup_py.compile_mode() == mode


def test_an_unknown_compile_mode_stops_the_build_with_the_choices(
    setup_py: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_COMPILE", "yes")
    with pytest.raises(SystemExit, match="auto, 0 or 1"):
        setup_py.compile_mode()


@pytest.mark.parametrize(
    ("mode", "argv"),
    [
        ("auto", ["egg_info"]),  # metadata: nothing to compile
        ("auto", ["dist_info", "--output-dir", "x"]),
        ("1", ["editable_wheel", "--dist-dir", "x"]),  # the .so files would shadow the edited .py
        ("auto", ["develop"]),
        ("0", ["bdist_wheel"]),
    ],
)
def test_no_extensions_for_metadata_editable_or_opted_out_builds(
    setup_py: ModuleType, mode: str, argv: list[str]
) -> None:
    assert setup_py.compiled_extensions(mode, argv) == []


def test_auto_without_a_compiler_warns_and_builds_no_extensions(
    setup_py: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert setup_py.compiled_extensions("auto", ["bdist_wheel"]) == []
    assert "no C compiler (/nonexistent/cc)" in capsys.readouterr().err


def test_required_compile_without_a_compiler_stops_with_the_reason(
    setup_py: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(SystemExit, match="cannot be compiled: no C compiler"):
        setup_py.compiled_extensions("1", ["bdist_wheel"])


def _wheel(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[Path]]:
    """pip's wheel build of a copy of the packaged sources, in this environment (no downloads)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(ROOT / name, src / name)
    out = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v"]
    command = [*pip_wheel, "-w", str(out), str(src)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=240)
    return done, sorted(out.glob("*.whl")) if out.exists() else []


def _compiled_members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [n for n in archive.namelist() if n.endswith((".so", ".pyd"))]


def _python_members(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if n.endswith(".py")}


def test_opted_out_wheel_is_pure_python_with_every_module(tmp_path: Path) -> None:
    done, wheels = _wheel(tmp_path, ROUTER_COMPILE="0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [wheel] = wheels
    assert wheel.name.endswith("-py3-none-any.whl")
    assert _compiled_members(wheel) == []
    assert {"router/engine.py", "streams/commit.py", "router/sortedseq.py"} <= _python_members(wheel)


def test_a_failing_c_build_falls_back_to_a_wheel_without_any_extension(tmp_path: Path) -> None:
    # a compiler that exists but fails: mypyc generates the C, the C build fails on the first file
    done, wheels = _wheel(tmp_path, ROUTER_COMPILE="auto", CC=shutil.which("false") or "/bin/false")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the C build failed" in done.stdout + done.stderr
    [wheel] = wheels
    assert _compiled_members(wheel) == []  # no shim left behind without its shared library
    assert "router/engine.py" in _python_members(wheel)


def test_a_failing_c_build_fails_a_required_compile(tmp_path: Path) -> None:
    done, wheels = _wheel(tmp_path, ROUTER_COMPILE="1", CC=shutil.which("false") or "/bin/false")
    assert done.returncode != 0
    assert wheels == []
