"""The domain and its store: invoices, export files, poll runs and vendors as event-sourced
aggregates. Imports no aiohttp, paramiko or click."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it; CHANGELOG.md says what changed
