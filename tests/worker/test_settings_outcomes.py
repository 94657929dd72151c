"""The settings of failed outcomes and the quality gate: defaults, parsing and refusals."""

from __future__ import annotations

import pytest

from router.errors import ConfigError
from worker.settings import load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert (s.max_escalations, s.max_retries) == (2, 2)
    assert (s.quality_gate, s.min_success, s.quality_min_outcomes) == ("shadow", 0.7, 30)
    assert (s.quality_window, s.quality_explore) == (200, 0.05)


def test_read_from_the_environment() -> None:
    s = load_settings(
        {
            "ROUTER_MAX_ESCALATIONS": "1",
            "ROUTER_MAX_RETRIES": "0",
            "ROUTER_QUALITY_GATE": "on",
            "ROUTER_MIN_SUCCESS": "0.9",
            "ROUTER_QUALITY_MIN_OUTCOMES": "50",
            "ROUTER_QUALITY_WINDOW": "50",
            "ROUTER_QUALITY_EXPLORE": "0",
        }
    )
    assert (s.max_escalations, s.max_retries, s.quality_gate, s.min_success) == (1, 0, "on", 0.9)
    assert (s.quality_min_outcomes, s.quality_window, s.quality_explore) == (50, 50, 0.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROUTER_QUALITY_GATE": "maybe"}, "ROUTER_QUALITY_GATE must be one of off, shadow, on"),
        ({"ROUTER_MAX_ESCALATIONS": "11"}, "max_escalations must be an integer from 0 to 10"),
        ({"ROUTER_MAX_RETRIES": "-1"}, "max_retries must be an integer from 0 to 100"),
        ({"ROUTER_MIN_SUCCESS": "0"}, "min_success must be a number more than 0"),
        ({"ROUTER_MIN_SUCCESS": "nan"}, "min_success"),
        ({"ROUTER_QUALITY_EXPLORE": "1.5"}, "quality_explore must be a number 0 or more and at most 1"),
        ({"ROUTER_QUALITY_WINDOW": "10"}, "must hold at least ROUTER_QUALITY_MIN_OUTCOMES"),
        ({"ROUTER_MAX_RETRIES": "two"}, "ROUTER_MAX_RETRIES='two' is not a valid int"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env)
