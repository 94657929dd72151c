"""Every value class of router/ and streams/ that writes out its `__init__` (a dataclass with
`init=False`, for mypyc: see router/values.py) agrees with its fields, so the fields stay the one
statement of what the class holds. The classes are found, not listed: one added later is checked
too.

What is checked is the source, so the modules are loaded from their .py files under a private
name: the compiled build (dev.py's compiled test run) gives its constructors no signature, and its
typed attributes would refuse the sentinel values the body check passes in.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from router.slots import SlotRecord, SlotState
from router.snapshot import waiting_from_json, waiting_to_json
from router.values import Task
from router.waiting import WaitingTask

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("router", "streams")
_PRIVATE = "_value_classes_source"


def _load_source(path: Path) -> ModuleType:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    name = ".".join((_PRIVATE, *parts))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the class's module up while decorating it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _written_out_classes() -> list[type]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _load_source(path)
            for cls in vars(module).values():
                is_own_class = inspect.isclass(cls) and cls.__module__ == module.__name__
                if is_own_class and dataclasses.is_dataclass(cls) and not cls.__dataclass_params__.init:  # type: ignore[attr-defined]
                    found.append(cls)
    return found


CLASSES = _written_out_classes()


def _name(cls: type) -> str:
    return f"{cls.__module__.removeprefix(_PRIVATE + '.')}.{cls.__qualname__}"


def _has_factory(f: dataclasses.Field[Any]) -> bool:
    return f.default_factory is not dataclasses.MISSING


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def test_the_classes_are_found() -> None:
    names = {_name(cls) for cls in CLASSES}
    known = {
        "router.values.Task",
        "router.values.Decision",
        "router.values.Alternative",
        "router.slots.SlotRecord",
        "streams.consumer.Entry",
    }
    assert known <= names, f"discovery missed {sorted(known - names)}"


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_signature_matches_the_fields(cls: type) -> None:
    """Parameters: the fields, in their order, keyword-only where the fields are, with their
    types and defaults. A field with a default factory (a mutable default) takes None, the
    constructor building the default in its place."""
    assert "__init__" in vars(cls), f"{_name(cls)} has init=False but no __init__ of its own"
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # after self
    fields = _init_fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for f, p in zip(fields, params, strict=True):
        kind = inspect.Parameter.KEYWORD_ONLY if f.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert p.kind is kind, f"{f.name}: {p.kind.description}, the field is {kind.description}"
        if _has_factory(f):
            assert (p.annotation, p.default) == (f"{f.type} | None", None), f.name
        else:
            assert p.annotation == f.type, f.name
            default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            assert p.default == default, f"{f.name}: defaults to {p.default!r}, the field to {default!r}"


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_the_body_sets_every_field_from_its_argument(cls: type) -> None:
    sentinels = {f.name: object() for f in _init_fields(cls)}
    value = cls(**sentinels)
    for name, sentinel in sentinels.items():
        assert getattr(value, name) is sentinel, f"{_name(cls)}.__init__ does not set {name} from its argument"


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_an_omitted_argument_gives_the_fields_default(cls: type) -> None:
    fields = _init_fields(cls)
    required = {f.name: object() for f in fields if f.default is dataclasses.MISSING and not _has_factory(f)}
    value = cls(**required)
    for f in fields:
        if f.name not in required:
            expected = f.default_factory() if _has_factory(f) else f.default
            assert getattr(value, f.name) == expected, f"{_name(cls)}.{f.name}"


def test_a_slot_record_keeps_every_field_through_its_snapshot_form() -> None:
    """SlotRecord's to_json and from_json name each field again: a field added to the class and
    not to them would be lost at a restart."""
    record = SlotRecord(
        slot_id="s1",
        model="sonnet",
        account="team",
        state=SlotState.BUSY,
        since_ms=1_000,
        last_heard_ms=2_000,
        task_id="t1",
        decision_id="d1",
        started=True,
        held={"task": {"task_id": "t1"}},
    )
    doc = record.to_json()
    assert sorted(doc) == sorted(f.name for f in dataclasses.fields(SlotRecord))
    assert SlotRecord.from_json(orjson.loads(orjson.dumps(doc))) == record


def test_a_waiting_task_keeps_every_field_through_its_snapshot_form() -> None:
    """router/snapshot.py names WaitingTask's fields again, in both directions."""
    task = Task(task_id="t1", priority=60, requires={"coding": 3}, ev=0.4, fields={"task_id": "t1"})
    waiting = WaitingTask(
        task=task,
        ev=0.4,
        seq=7,
        since_ms=1_000,
        models=frozenset({"haiku", "sonnet"}),
        min_tier=1,
        await_decision_id="d1",
        scale_ms=90_000.0,
        ev_rank=0.25,
        first_estimate_s=120.0,
        first_turn_s=60.0,
    )
    doc = waiting_to_json(waiting)
    assert sorted(doc) == sorted(f.name for f in dataclasses.fields(WaitingTask))
    assert waiting_from_json(orjson.loads(orjson.dumps(doc))) == waiting
