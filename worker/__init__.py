"""The processes: settings, the routing loop, the recorder, the dashboard, the CLI."""
