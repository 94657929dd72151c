"""Fleet files: every malformed value is refused with a ConfigError that says which pool and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import ConfigError
from sim.fleet import MAX_SLOTS_PER_POOL, load_fleet

GOOD_POOL = 'model = "haiku"\nslots = 2\n'


def write_fleet(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_well_formed_fleet_loads_with_its_values(tmp_path: Path) -> None:
    path = write_fleet(tmp_path, '[[pool]]\nmodel = "haiku"\nslots = 3\nspeed = 2\nquota_tokens_per_hour = 0\n')
    (pool,) = load_fleet(path).pools
    assert (pool.slots, pool.speed, pool.quota_tokens_per_hour, pool.account) == (3, 2.0, 0, "default")


def test_the_slot_cap_itself_is_allowed(tmp_path: Path) -> None:
    path = write_fleet(tmp_path, f'[[pool]]\nmodel = "haiku"\nslots = {MAX_SLOTS_PER_POOL}\n')
    assert load_fleet(path).slot_count == MAX_SLOTS_PER_POOL


def test_a_binary_fleet_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_bytes(b"\xff\xfe\x00\x81 binary")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_fleet(path)


@pytest.mark.parametrize("value", ["5", '["a"]', '""'])
def test_a_catalog_that_is_not_a_path_is_refused(tmp_path: Path, value: str) -> None:
    path = write_fleet(tmp_path, f"catalog = {value}\n[[pool]]\n{GOOD_POOL}")
    with pytest.raises(ConfigError, match="catalog must be a path string"):
        load_fleet(path)


def test_a_binary_catalog_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cat.toml").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    path = write_fleet(tmp_path, f'catalog = "cat.toml"\n[[pool]]\n{GOOD_POOL}')
    with pytest.raises(ConfigError, match=r"cat\.toml: not UTF-8"):
        load_fleet(path)


@pytest.mark.parametrize("value", ['["haiku"]', "{a = 1}", "3", '"no-such-model"'])
def test_a_model_that_is_not_a_catalogue_name_is_refused(tmp_path: Path, value: str) -> None:
    path = write_fleet(tmp_path, f"[[pool]]\nmodel = {value}\nslots = 1\n")
    with pytest.raises(ConfigError, match="needs a model from the catalogue"):
        load_fleet(path)


@pytest.mark.parametrize("value", ['"fast"', "[1]", "nan", "inf", "0", "-1", "true"])
def test_speed_must_be_a_finite_number_above_zero(tmp_path: Path, value: str) -> None:
    path = write_fleet(tmp_path, f"[[pool]]\n{GOOD_POOL}speed = {value}\n")
    with pytest.raises(ConfigError, match="pool haiku: speed must be a finite number > 0"):
        load_fleet(path)


@pytest.mark.parametrize("value", ['"lots"', "nan", "inf", "-1", "1.5e7", "true"])
def test_quota_must_be_a_whole_number_of_tokens(tmp_path: Path, value: str) -> None:
    path = write_fleet(tmp_path, f"[[pool]]\n{GOOD_POOL}quota_tokens_per_hour = {value}\n")
    with pytest.raises(ConfigError, match="quota_tokens_per_hour must be an integer >= 0"):
        load_fleet(path)


@pytest.mark.parametrize("value", ["true", "0", "-2", "1.5", '"4"', str(MAX_SLOTS_PER_POOL + 1), "100000000"])
def test_slots_must_be_an_integer_within_the_cap(tmp_path: Path, value: str) -> None:
    path = write_fleet(tmp_path, f'[[pool]]\nmodel = "haiku"\nslots = {value}\n')
    with pytest.raises(ConfigError, match="slots must be an integer from 1 to 10,000"):
        load_fleet(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'name = ["x"]\n[[pool]]\n{GOOD_POOL}', "name must be a non-empty string"),
        (f'nmae = "x"\n[[pool]]\n{GOOD_POOL}', "unknown key 'nmae'"),
        (f"[[pool]]\n{GOOD_POOL}sped = 2\n", "unknown key 'sped'"),
        (f"[[pool]]\n{GOOD_POOL}account = 7\n", "account must be a non-empty string"),
        (f"[[pool]]\n{GOOD_POOL}[[pool]]\n{GOOD_POOL}", "two pools of model haiku on account default"),
        ("pool = 3\n", "needs at least one"),
        ("pool = [1]\n", r"each \[\[pool\]\] must be a table"),
    ],
)
def test_other_malformed_fleets_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_fleet(write_fleet(tmp_path, text))
