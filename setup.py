"""Setuptools hook; the project's metadata lives in pyproject.toml.

ROUTER_COMPILE=1 also compiles router/ and streams/ to C extensions with mypyc (about 1.9x the
routing throughput, docs/benchmarks.md). mypyc comes with mypy, which the build then needs:

    pip install '.[dev]' 'setuptools>=77' wheel
    ROUTER_COMPILE=1 pip install --no-build-isolation --no-deps --force-reinstall .

(mypyc type-checks the code against the installed dependencies, hence the first line.)
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup


def compiled_extensions() -> list[Any]:
    if os.environ.get("ROUTER_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(["router", "streams"], opt_level="3"))


setup(ext_modules=compiled_extensions())
