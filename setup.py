"""Setuptools hook; the project's metadata lives in pyproject.toml.

A wheel or a regular install compiles router/ and streams/ to C extensions with mypyc (about 1.9x
the routing throughput, docs/benchmarks.md): both packages are plain, fully typed Python, so the
compiled modules behave the same and the .py files remain the reference. ROUTER_COMPILE chooses:

    auto (default)  compile; where that cannot be done (no C compiler, no Python headers), install
                    the interpreted packages and say so
    1               compile, and fail the build if that cannot be done
    0               never compile

An editable install (`pip install -e .`) never compiles: extensions built into the source tree would
shadow the .py files being edited. mypyc type-checks the packages against redis, hiredis and orjson,
hence those in [build-system] requires.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

PACKAGES = ["router", "streams"]
# only these commands build extensions; metadata steps (egg_info, dist_info, sdist) need no compiling
_BUILDING = {"bdist_wheel", "build", "build_ext", "install", "bdist"}
_EDITABLE = {"editable_wheel", "develop"}


def compile_mode() -> str:
    mode = os.environ.get("ROUTER_COMPILE", "auto").strip().lower() or "auto"
    if mode not in {"auto", "0", "1"}:
        sys.exit(f"ROUTER_COMPILE must be auto, 0 or 1, not {mode!r}")
    return mode


def _warn(message: str) -> None:
    print(f"model-router: {message}; installing the interpreted router/ and streams/", file=sys.stderr)


def _cannot_build_c() -> str | None:
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if not shutil.which(compiler):
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def compiled_extensions(mode: str, argv: list[str]) -> list[Any]:
    commands = set(argv)
    if mode == "0" or commands & _EDITABLE or not commands & _BUILDING:
        return []
    missing = _cannot_build_c()
    if missing and mode == "1":
        sys.exit(f"ROUTER_COMPILE=1, but router/ and streams/ cannot be compiled: {missing}")
    if missing:
        _warn(f"cannot compile: {missing}")
        return []
    try:
        from mypyc.build import mypycify

        return list(mypycify(PACKAGES, opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        if mode == "1":
            raise
        _warn(f"mypyc could not compile ({exc!r})")
        return []


class BuildExtOrFallBack(build_ext):
    """Builds the extensions into a build directory cleared of earlier builds' (pip builds in the
    source tree's build/, which outlives a build: a module since removed, or a compiled build
    followed by one that fell back, would otherwise ship its old extension over the new .py). With
    ROUTER_COMPILE=auto, a C build that fails leaves no extension behind (a module's shim without
    the shared library would not import) and the wheel is a pure-Python one."""

    def run(self) -> None:
        if not self.inplace:
            _remove_extensions(Path(self.build_lib))
        try:
            super().run()
        except Exception as exc:
            if compile_mode() == "1":
                raise
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self._build_pure_wheel()
            _warn(f"the C build failed ({str(exc)[:300]})")

    def _build_pure_wheel(self) -> None:
        self.distribution.ext_modules = []
        wheel = self.distribution.get_command_obj("bdist_wheel", create=False)
        if wheel is not None:  # a wheel being built: tag it py3-none-any, as it holds no extension
            wheel.root_is_pure = True


def _remove_extensions(build_lib: Path) -> None:
    suffixes = (".so", ".pyd")
    found = [p for package in PACKAGES for p in (build_lib / package).rglob("*") if p.suffix in suffixes]
    found += [p for p in build_lib.glob("*__mypyc*") if p.suffix in suffixes]
    for path in found:
        path.unlink()


if __name__ == "__main__":  # as pip's build backend and `python setup.py ...` run it; tests import it
    setup(ext_modules=compiled_extensions(compile_mode(), sys.argv[1:]), cmdclass={"build_ext": BuildExtOrFallBack})
