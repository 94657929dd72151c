"""The decision store: the SQL schema, its migrations, idempotent writes and the queries that the
dashboard and the ops tools run. It knows nothing of Redis or of the routing loop."""
