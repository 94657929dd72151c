"""The dashboard's database engine: the store's, made read-only where the database can enforce it."""

from __future__ import annotations

from sqlalchemy import Engine

from store.db import make_engine


def read_only_engine(url: str) -> Engine:
    """PostgreSQL refuses writes in these sessions, so a bug here cannot change the decision log.
    SQLite gets the store's engine (WAL, busy timeout) unchanged: read-only mode on a WAL database
    fails whenever its shared-memory file is missing, and the dashboard only ever runs SELECTs."""
    if url.startswith("postgresql"):
        return make_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    return make_engine(url)
