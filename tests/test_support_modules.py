"""tests/support is on sys.path (and first on it for a script run from there, as the slot process of
the restart tests is): a module there named like a standard-library one would replace it."""

from __future__ import annotations

import sys
from pathlib import Path

SUPPORT = Path(__file__).parent / "support"


def test_no_support_module_shadows_the_standard_library() -> None:
    names = {p.stem for p in SUPPORT.glob("*.py")} - {"__init__"}
    assert names, "tests/support has modules"
    assert sorted(names & sys.stdlib_module_names) == []
