"""What a restarted worker's Router rebuilds from the ledger snapshot: waiting tasks under an
edited catalogue, utilisation of any account name, and the arrival order of held tasks."""

from __future__ import annotations

from importlib import resources

from support.router_harness import RouterHarness, assigned, decisions, free, pending

from router.catalog import load_catalog, parse_catalog
from router.slots import UTIL_SEP
from router.values import QuotaUtilisation, SlotGone


def test_a_catalogue_change_across_a_restart_refiles_the_waiting_tasks() -> None:
    """Waiting tasks are restored with the `models` computed under the old catalogue. Lowering a
    model's capability between restarts (prices and ratings are data) must not leave the index
    offering a task that route() no longer finds capable, which would fail every batch."""
    h = RouterHarness(load_catalog(), snapshot=True)
    h.batch(pending("deep", 50, {"coding": 8}))  # sonnet/codex/opus/gpt-5 capable; nothing free
    old_text = resources.files("router").joinpath("data/catalog.toml").read_text()
    text = old_text.replace(
        "capabilities = { coding = 8, reasoning = 7, analysis = 7, writing = 8, safety = 8 }",
        "capabilities = { coding = 7, reasoning = 7, analysis = 7, writing = 8, safety = 8 }",
    )
    assert text != old_text
    h = h.restarted(parse_catalog(text))
    effects = h.batch(free("s1", "sonnet"))  # sonnet is no longer capable: no decision, no error
    assert [d.outcome for d in decisions(effects)] == []


def test_utilisation_of_an_account_with_the_key_separator_in_its_name_survives_a_restart() -> None:
    h = RouterHarness(load_catalog(), snapshot=True)
    account = f"team{UTIL_SEP}x"
    h.batch(QuotaUtilisation(model="haiku", account=account, utilisation=0.7))
    h = h.restarted()
    assert h.router.ledger.utilisation_of(account, "haiku") == 0.7


def test_a_held_task_keeps_its_arrival_place_across_a_restart() -> None:
    """restore() must count the arrival numbers of tasks held on slots too: otherwise a task
    published after a restart could get the number of an older, held task, and when that one lapses
    back the tie would be broken by task id, not arrival."""
    h = RouterHarness(load_catalog(), snapshot=True, ageing_points_per_service_time=0.0, ev_rank_points=0.0)
    h.batch(pending("keep", 50, {"coding": 10}))  # opus-only: stays waiting, seq 1
    h.batch(pending("zz-old", 50, ev=0.5))  # seq 2
    h.batch(free("h1", "haiku"))  # zz-old -> h1 (held with seq 2)
    h = h.restarted()
    h.batch(pending("aa-new", 50, ev=0.5))  # must not get seq 2 again
    h.batch(SlotGone(slot_id="h1"))  # zz-old requeued with seq 2
    got = [task_id for task_id, _ in assigned(h.batch(free("h2", "haiku")))]
    assert got == ["zz-old"], f"older task should go first, got {got}"
