"""Hypothesis strategies for `router:events` payloads, each labelled valid or invalid by
construction from the wire contract (PROTOCOL.md), so a test can check the parser against the
label rather than against itself.

Valid payloads follow the contract, with optional fields present or not and unknown extra fields
(ignored by the router). Invalid ones are a valid payload with exactly one defect: a required
field dropped, a field of the wrong type, a value out of range, an unknown type or model, a
non-object document, bytes that are not JSON, or an entry over the size limit."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

MODELS = ("haiku", "sonnet", "opus", "gpt-5")
CAPABILITIES = ("coding", "reasoning", "analysis", "writing", "safety")
MAX_BYTES = 4096  # the tests run the parser and the worker with this limit

TASK_IDS = st.sampled_from([f"t{i}" for i in range(12)])
SLOT_IDS = st.sampled_from([f"s{i}" for i in range(6)])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(-1e6, 1e6), TEXT)


BOOL = st.booleans()
PRIORITY = st.integers(0, 100)
REQUIRES = st.dictionaries(st.sampled_from(CAPABILITIES), st.integers(0, 10), max_size=3)
EV = st.floats(-100, 100, allow_nan=False)
TOKENS = st.integers(0, 10**6)
TITLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
SUBMITTED = st.integers(0, 2**41)
MODEL = st.sampled_from(MODELS)
ACCOUNT = st.sampled_from(["default", "team-b"])
COST = st.floats(0, 100)


def _optional(draw: st.DrawFn, doc: dict[str, Any], name: str, values: st.SearchStrategy[Any]) -> None:
    if draw(BOOL):
        doc[name] = draw(values)


@st.composite
def task_pending(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "task.pending",
        "task_id": draw(TASK_IDS),
        "priority": draw(PRIORITY),
        "requires": draw(REQUIRES),
    }
    _optional(draw, doc, "layer", TEXT)
    _optional(draw, doc, "ev", EV)
    _optional(draw, doc, "quest_priority", PRIORITY)
    _optional(draw, doc, "est_input_tokens", TOKENS)
    _optional(draw, doc, "est_output_tokens", TOKENS)
    _optional(draw, doc, "title", TITLE)
    _optional(draw, doc, "submitted_at", SUBMITTED)
    return doc


@st.composite
def slot_free(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "slot.free", "slot_id": draw(SLOT_IDS), "model": draw(MODEL)}
    _optional(draw, doc, "account", ACCOUNT)
    if draw(BOOL):
        completed: dict[str, Any] = {"task_id": draw(TASK_IDS)}
        _optional(draw, completed, "input_tokens", TOKENS)
        _optional(draw, completed, "output_tokens", TOKENS)
        _optional(draw, completed, "cost_usd", COST)
        doc["completed"] = completed
    return doc


def _simple(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": st.just(kind), **fields})


VALID = st.one_of(
    task_pending(),
    task_pending(),
    slot_free(),
    slot_free(),
    _simple("task.cancelled", task_id=TASK_IDS),
    _simple("task.started", task_id=TASK_IDS, slot_id=SLOT_IDS),
    _simple("slot.heartbeat", slot_id=SLOT_IDS),
    _simple("slot.gone", slot_id=SLOT_IDS),
    _simple("quota.utilisation", model=st.sampled_from(MODELS), utilisation=st.floats(0, 1)),
)

# (field, wrong values) per type: each value breaks the field whatever else the document holds
_REQUIRED = {
    "task.pending": ("task_id", "priority", "requires"),
    "slot.free": ("slot_id", "model"),
    "task.cancelled": ("task_id",),
    "task.started": ("task_id", "slot_id"),
    "slot.heartbeat": ("slot_id",),
    "slot.gone": ("slot_id",),
    "quota.utilisation": ("model", "utilisation"),
}
_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "task_id": st.one_of(
        st.integers(-(2**40), 2**40), st.just(""), st.just("x" * 129), st.lists(st.integers(0, 9), max_size=2)
    ),
    "slot_id": st.one_of(st.booleans(), st.just(""), st.just("y" * 129), st.floats(-1e9, 1e9)),
    "priority": st.one_of(
        st.integers(101, 10**6), st.integers(-(10**6), -1), st.just(50.5), st.just("50"), st.booleans()
    ),
    "requires": st.one_of(
        st.just([]),
        st.just("coding"),
        st.dictionaries(st.sampled_from(CAPABILITIES), st.integers(11, 99), min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(CAPABILITIES), st.just(True), min_size=1, max_size=1),
        st.just({"": 3}),
    ),
    "model": st.one_of(st.just("no-such-model"), st.integers(0, 99), st.just("")),
    "utilisation": st.one_of(st.floats(1.0001, 10), st.floats(-10, -0.0001), st.just("0.5"), st.booleans()),
    "quest_priority": st.one_of(st.integers(101, 1000), st.just("high")),
    "title": st.one_of(st.just("z" * 201), st.integers(0, 9)),
    "est_input_tokens": st.one_of(st.integers(-1000, -1), st.just(1.5)),
    "completed": st.one_of(st.just([]), st.just("done"), st.just({"input_tokens": 3})),
}
_OPTIONAL_WRONG = {"task.pending": ("quest_priority", "title", "est_input_tokens"), "slot.free": ("completed",)}


_DEFECTS = st.sampled_from(["drop", "wrong", "wrong", "type", "not-object", "optional"])
_REQUIRED_NAMES = {kind: st.sampled_from(names) for kind, names in _REQUIRED.items()}
_OPTIONAL_NAMES = {kind: st.sampled_from(names) for kind, names in _OPTIONAL_WRONG.items()}
_NOT_OBJECT = st.one_of(st.lists(JSON_SCALARS, max_size=3), JSON_SCALARS)
_BAD_TYPE = st.one_of(st.just("task.pendin"), st.just(None), st.integers(0, 9), st.just("TASK.PENDING"))
_ROLL = st.integers(0, 19)
_EXTRA_ROLL = st.integers(0, 4)
_EXTRA_NAME = st.text("abc", min_size=1, max_size=4)
_JUNK = st.one_of(st.binary(max_size=40), st.just(b'{"type": "task.pending"'), st.just(b"\xff\xfe{}"))


@st.composite
def invalid_document(draw: st.DrawFn) -> Any:
    doc = dict(draw(VALID))
    kind = doc["type"]
    defect = draw(_DEFECTS)
    if defect == "drop":
        del doc[draw(_REQUIRED_NAMES[kind])]
    elif defect == "wrong":
        name = draw(_REQUIRED_NAMES[kind])
        doc[name] = draw(_WRONG[name])
    elif defect == "optional" and kind in _OPTIONAL_NAMES:
        name = draw(_OPTIONAL_NAMES[kind])
        doc[name] = draw(_WRONG[name])
    elif defect == "not-object":
        return draw(_NOT_OBJECT)
    else:
        doc["type"] = draw(_BAD_TYPE)
    return doc


def _extra_fields(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    if draw(_EXTRA_ROLL) == 0:
        doc = {**doc, "x_" + draw(_EXTRA_NAME): draw(JSON_SCALARS)}
    return doc


_INVALID = invalid_document()


@st.composite
def entry(draw: st.DrawFn) -> tuple[bytes, bool]:
    """One entry's `data` bytes and whether the contract calls it valid."""
    roll = draw(_ROLL)
    if roll < 11:
        return orjson.dumps(_extra_fields(draw, draw(VALID))), True
    if roll < 17:
        return orjson.dumps(draw(_INVALID)), False
    if roll < 19:
        junk = draw(_JUNK)
        try:
            orjson.loads(junk)
        except orjson.JSONDecodeError:
            return junk, False
        return orjson.dumps({"type": 7}), False  # rare binary that parses: use a certain defect instead
    big = {**draw(VALID), "padding": "p" * MAX_BYTES}
    return orjson.dumps(big), False
