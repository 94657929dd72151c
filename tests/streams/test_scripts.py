"""streams/scripts.py: every Lua script in one place, each documented as its source reads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from streams import scripts
from streams.scripts import ALL, LuaScript

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("router", "streams", "worker", "store", "dashboard", "sim", "bench")
_LITERAL_INDEX = {name: re.compile(rf"\b{name}\[(\d+)\]") for name in ("KEYS", "ARGV")}


def _literal_indices(script: LuaScript, table: str) -> set[int]:
    """The positions of KEYS or ARGV the source reads by a number (not by a computed index)."""
    return {int(n) for n in _LITERAL_INDEX[table].findall(script.source)}


def _documented(script: LuaScript, table: str) -> tuple[str, ...]:
    return script.keys if table == "KEYS" else script.argv


def test_all_lists_every_script_of_the_module() -> None:
    defined = {name for name, value in vars(scripts).items() if isinstance(value, LuaScript)}
    assert {name for name, value in vars(scripts).items() if value in ALL} == defined
    assert len(defined) == len(ALL) == len({script.source for script in ALL})


@pytest.mark.parametrize("script", ALL, ids=lambda s: s.name)
@pytest.mark.parametrize("table", ["KEYS", "ARGV"])
def test_each_position_the_source_reads_is_documented_and_each_documented_one_read(
    script: LuaScript, table: str
) -> None:
    documented = _documented(script, table)
    read = _literal_indices(script, table)
    variadic = bool(documented) and documented[-1].startswith("...")
    fixed = len(documented) - variadic
    # a variadic tail covers any position past the fixed ones; otherwise nothing may be undocumented
    beyond = {n for n in read if n > fixed}
    assert not beyond or variadic, f"{script.name} reads {table}{sorted(beyond)} it does not document"
    assert set(range(1, fixed + 1)) <= read, f"{script.name} documents {table} it never reads"
    assert all(doc.strip(". ") for doc in documented), "every position says what it holds"
    assert script.returns


def test_no_module_outside_streams_scripts_holds_lua() -> None:
    """Lua lives in streams/scripts.py only: anything that calls into Redis from a script is there."""
    found = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "streams" / "scripts.py" and "redis.call(" in path.read_text(encoding="utf-8")
    ]
    assert found == []


@pytest.mark.integration
@pytest.mark.parametrize("script", ALL, ids=lambda s: s.name)
def test_each_script_compiles_on_the_real_redis(r: redis.Redis, script: LuaScript) -> None:
    sha = r.script_load(script.source)
    assert r.script_exists(sha) == [True]
    assert sha == r.register_script(script.source).sha
