#!/usr/bin/env python3
"""Set-up and entry points for a fresh machine that has only Python.

    python3 dev.py demo [router demo options]   # the whole system on embedded Redis and SQLite
    python3 dev.py test [pytest options]        # the whole test suite (then the compiled routing run)
    python3 dev.py run  <router subcommand ...>  # any `router` command inside the project venv
    python3 dev.py bench                          # throughput, latency and scaling benchmarks

The first call creates .venv and installs the project with its dev extras, editable (never
compiled; its build environment still fetches the build requirements, mypy among them); later
calls reinstall only when pyproject.toml changes. `test` without options then compiles router/
and streams/ with mypyc (build/compiled/, reused while unchanged) and runs their tests and the
worker's end-to-end tests again on the compiled modules, as a regular (non-editable) install
ships them; that pass needs a C compiler and the Python headers, and says so when they are missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ROUTER_VENV", ROOT / ".venv"))
STAMP = VENV / ".installed-pyproject.sha256"
COMPILED_TESTS = [
    "tests/router",
    "tests/streams",
    "tests/worker",
    "tests/integration/test_worker_e2e.py",
    "tests/integration/test_atomic_step_redis.py",
]


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> Path:
    if not _python().exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        print("installing model-router and its dependencies ...", flush=True)
        pip = [str(_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(digest)
    return _python()


def test_compiled(python: str) -> int:
    """The routing packages' tests again, on the mypyc-compiled modules."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        print("compiled routing not tested: needs a C compiler and the Python headers", file=sys.stderr)
        return 0
    print("compiling router/ and streams/ with mypyc for the compiled test run ...", flush=True)
    built = subprocess.run([python, "-m", "bench.compiled"], cwd=ROOT, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        print(built.stdout + built.stderr, file=sys.stderr)
        return built.returncode
    path = built.stdout.strip().splitlines()[-1]
    env = dict(os.environ, PYTHONPATH=path)  # worker subprocesses load the compiled modules too
    pytest = [python, "-m", "pytest", "-q", "-o", f"pythonpath={path} . tests", *COMPILED_TESTS]
    return subprocess.call(pytest, cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "run", "bench"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    python = str(ensure_venv())
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return subprocess.call([python, "-m", "worker.cli", "demo", *rest], cwd=ROOT)
    if command == "test":
        code = subprocess.call([python, "-m", "pytest", *rest], cwd=ROOT)
        return code or (test_compiled(python) if not rest else 0)
    if command == "bench":
        for module in ("bench.scaling", "bench.throughput"):
            code = subprocess.call([python, "-m", module, *rest], cwd=ROOT)
            if code:
                return code
        return 0
    return subprocess.call([python, "-m", "worker.cli", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
