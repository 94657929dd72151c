"""Alembic migrations for the decision store, packaged so `router db upgrade` works when installed."""
