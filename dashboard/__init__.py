"""`router web`: the Routing dashboard, `/metrics` and `/healthz`, read-only against the database."""
