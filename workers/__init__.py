"""Dask and the service: tasks, broker, campaigns, HTTP API and the CLI."""
