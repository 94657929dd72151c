"""Alembic environment: runs on the connection that store.migrate hands it (online mode only)."""

from __future__ import annotations

from alembic import context

from store.migrate import VERSION_TABLE
from store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `router db upgrade` (store.migrate), which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
