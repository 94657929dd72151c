"""Every Redis key name in one place. Names after the prefix are part of the wire contract."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "router:"
LIVE_GROUP = "router"
DRY_RUN_GROUP = "router-dry-run"
RECORDER_GROUP = "recorder"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one router. A prefix with a hash tag, such as `router:{pool-a}:`, puts every key
    of that router in one Redis Cluster slot, so the atomic step works on a cluster."""

    prefix: str = DEFAULT_PREFIX

    # -- the wire (PROTOCOL.md) --
    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def status(self) -> str:
        return f"{self.prefix}status"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}decisions"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    @property
    def usage(self) -> str:
        """Extension: completed-task usage reported with `slot.free`, for the recorder."""
        return f"{self.prefix}usage"

    def assign(self, slot_id: str) -> str:
        return f"{self.prefix}assign:{slot_id}"

    # -- side work (RQ) --
    @property
    def jobs_queue(self) -> str:
        """RQ queue name for low-rate side work (retention, dead-letter re-drive)."""
        return f"{self.prefix}jobs"

    @property
    def retention_due(self) -> str:
        """Marker whose expiry says the retention job is due again (one enqueue per interval)."""
        return f"{self.prefix}jobs:retention-due"

    # -- the router's own state --
    def state(self, *, dry_run: bool) -> StateKeys:
        return StateKeys(f"{self.prefix}{'dry-run:' if dry_run else ''}")


@dataclass(frozen=True, slots=True)
class StateKeys:
    """Ledger snapshot and leadership keys; a dry run keeps its own set."""

    base: str

    @property
    def slots(self) -> str:
        return f"{self.base}ledger:slots"

    @property
    def waiting(self) -> str:
        return f"{self.base}ledger:waiting"

    @property
    def assigned(self) -> str:
        return f"{self.base}ledger:assigned"

    @property
    def ev_window(self) -> str:
        return f"{self.base}ledger:ev"

    @property
    def utilisation(self) -> str:
        return f"{self.base}ledger:utilisation"

    @property
    def budgets(self) -> str:
        """Spend per budget in its current period: name -> [period, usd, crossing reported]."""
        return f"{self.base}ledger:budgets"

    @property
    def rates(self) -> str:
        """Hash: the measured service time per model and the ETA correction (router/service_rates.py)."""
        return f"{self.base}ledger:rates"

    @property
    def escalations(self) -> str:
        """Tasks between attempts after a failed outcome (router/escalation.py)."""
        return f"{self.base}ledger:escalations"

    @property
    def quality(self) -> str:
        """The quality gate's recent outcomes per model and layer (router/quality.py)."""
        return f"{self.base}ledger:quality"

    @property
    def outbox(self) -> str:
        """With ROUTER_MIN_REPLICAS >= 1: stream entries written and not yet published (a list of
        stream, maxlen, data triples)."""
        return f"{self.base}outbox"

    @property
    def replication(self) -> str:
        """A hash: `probe`, the write whose replication WAIT confirms; `timeouts`, how many waits
        for the replicas timed out (for /metrics)."""
        return f"{self.base}replication"

    @property
    def leader(self) -> str:
        return f"{self.base}leader"

    @property
    def fence(self) -> str:
        return f"{self.base}fence"
