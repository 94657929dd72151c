"""The compiled build of router/ and streams/ (mypyc), kept out of the source tree.

    python -m bench.compiled        # build build/compiled/ (or reuse it) and print its path

Both packages are plain, fully typed Python, so mypyc compiles them unchanged to C extensions that
route about 1.9x as many events per second (docs/benchmarks.md). A regular install (a wheel) is
compiled by setup.py; an editable install never is. This runs the same setup.py (`build_ext
--inplace`, ROUTER_COMPILE=1) on a copy of the packages in build/compiled/, so that putting that
directory first on PYTHONPATH runs the modules a regular install ships beside the editable checkout
(every other package still comes from the checkout). The benchmarks and the compiled test run use
it. A build is reused while the sources it came from are unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "compiled"
PACKAGES = ("router", "streams")
_STAMP = ".sources.sha256"
_BUILD_FILES = ("setup.py", "pyproject.toml")  # the build script and its settings (mypy's among them)


def source_digest() -> str:
    """What a build depends on: the packages' files, setup.py, the mypy settings and version."""
    from mypy.version import __version__ as mypy_version

    digest = hashlib.sha256(f"{mypy_version} {sys.version}".encode())
    for name in _BUILD_FILES:
        digest.update((ROOT / name).read_bytes())
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in {".py", ".toml"}:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_compiled(out: Path = OUT) -> Path:
    """Build (or reuse) the compiled packages under `out`; raises RuntimeError with mypyc's output
    if the build fails (for example, no C compiler). Processes asking at once (a benchmark beside
    the test run) take turns: the first builds, the others then find its build."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_unless_current(out)


def _build_unless_current(out: Path) -> Path:
    digest = source_digest()
    stamp = out / _STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, out / package, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in _BUILD_FILES:
        shutil.copy(ROOT / name, out / name)
    (out / "README.md").write_text("model-router\n")  # pyproject.toml names a readme; its text is not built
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=out,
        env=dict(os.environ, ROUTER_COMPILE="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(out / "build", ignore_errors=True)  # generated C and object files
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"mypyc could not compile {', '.join(PACKAGES)}:\n{tail}")
    _check_loads_compiled(out)
    stamp.write_text(digest + "\n")
    return out


def _check_loads_compiled(out: Path) -> None:
    """With `out` first on the path, the packages must load as extensions (not their .py copies)."""
    probe = (
        "import sys, router.engine as e, streams.commit as c; "
        "sys.exit(not all(m.__file__.endswith(('.so', '.pyd')) for m in (e, c)))"
    )
    if subprocess.run([sys.executable, "-c", probe], cwd=out, check=False).returncode != 0:
        raise RuntimeError(f"{out} was built but its modules do not load as compiled extensions")


def main() -> int:
    try:
        print(ensure_compiled())
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
