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


def _copy_sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(ROOT / name, src / name)
    return src


def _wheel(src: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    """pip's wheel build of `src` in this environment (no downloads); the wheel, if one was built.
    Like pip, it builds in the source tree's build/, which later builds of the same tree reuse."""
    out = src.parent / "dist"
    shutil.rmtree(out, ignore_errors=True)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v"]
    done = subprocess.run(
        [*pip_wheel, "-w", str(out), str(src)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    wheels = sorted(out.glob("*.whl")) if out.exists() else []
    assert len(wheels) <= 1
    return done, wheels[0] if wheels else None


def _members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _extensions(wheel: Path) -> list[str]:
    return [name for name in _members(wheel) if name.endswith((".so", ".pyd"))]


def _failed(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout[-3000:] + done.stderr[-3000:]


def test_opted_out_wheel_is_pure_python_with_every_module(tmp_path: Path) -> None:
    done, wheel = _wheel(_copy_sources(tmp_path), ROUTER_COMPILE="0")
    assert wheel is not None, _failed(done)
    assert wheel.name.endswith("-py3-none-any.whl")
    assert _extensions(wheel) == []
    assert {"router/engine.py", "streams/commit.py", "router/data/catalog.toml"} <= set(_members(wheel))


def test_the_default_wheel_is_compiled_and_later_builds_ship_nothing_stale(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path)
    extra = src / "router" / "extra.py"
    extra.write_text("VALUE = 1\n")
    done, wheel = _wheel(src)  # ROUTER_COMPILE unset: auto
    assert wheel is not None, _failed(done)
    assert not wheel.name.endswith("-none-any.whl")  # tagged for this interpreter and platform
    members = set(_members(wheel))
    modules = [p.relative_to(src).with_suffix("") for pkg in ("router", "streams") for p in (src / pkg).glob("*.py")]
    for module in modules:  # every module has its extension, beside its .py
        assert any(m.startswith(f"{module}.") and m.endswith((".so", ".pyd")) for m in members), module
    assert any("__mypyc" in m for m in _extensions(wheel))  # the shared library the shims load
    assert "router/data/catalog.toml" in members

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    probe = (
        "import router.engine as e, streams.commit as c; from router.catalog import load_catalog; "
        "assert e.__file__.endswith(('.so', '.pyd')) and c.__file__.endswith(('.so', '.pyd')), e.__file__; "
        "assert load_catalog().models"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=unpacked, env={**os.environ, "PYTHONPATH": str(unpacked)}, check=False
    )
    assert ran.returncode == 0

    # A module is removed and the rest rebuilt: pip reuses the tree's build/, which still holds the
    # removed module's extension (and the old shared library); neither may ship. (Its .py copy
    # stays in build/ too, as for any setuptools project built in place: dead, but harmless.)
    extra.unlink()
    done, rebuilt = _wheel(src)
    assert rebuilt is not None, _failed(done)
    assert not [m for m in _extensions(rebuilt) if m.startswith("router/extra")]
    assert len([m for m in _extensions(rebuilt) if "__mypyc" in m]) == 1

    # The source changes and the next build cannot compile (a compiler that exists but fails): no
    # earlier extension may ship over the changed .py files, and the wheel is a pure-Python one.
    errors = src / "router" / "errors.py"
    errors.write_text(errors.read_text() + "\nCHANGED = 1  # new code, so new C\n")
    done, fallen_back = _wheel(src, CC=shutil.which("false") or "/bin/false")
    assert fallen_back is not None, _failed(done)
    assert "the C build failed" in done.stdout + done.stderr
    assert _extensions(fallen_back) == []
    assert fallen_back.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(fallen_back) as archive:
        assert archive.read("router/errors.py").decode().endswith("CHANGED = 1  # new code, so new C\n")


def test_a_failing_c_build_fails_a_required_compile(tmp_path: Path) -> None:
    done, wheel = _wheel(_copy_sources(tmp_path), ROUTER_COMPILE="1", CC=shutil.which("false") or "/bin/false")
    assert done.returncode != 0
    assert wheel is None


def test_an_editable_build_compiles_nothing(tmp_path: Path) -> None:
    """Through the build backend's PEP 660 hook, as `pip install -e .` calls it."""
    src = _copy_sources(tmp_path)
    hook = "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", hook, str(tmp_path / "editable")],
        cwd=src,
        env={**os.environ, "ROUTER_COMPILE": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, _failed(done)
    wheel = tmp_path / "editable" / done.stdout.strip().splitlines()[-1]
    assert _extensions(wheel) == []
    assert [p for p in src.rglob("*") if p.suffix in {".so", ".pyd"}] == []
