"""Fixtures of the media-job tests."""

import pytest


@pytest.fixture(autouse=True)
def _worker_keeps_the_test_connection(monkeypatch):
    """The runners (media jobs, v3 calls) close stale connections as a Celery task starts (a worker's connection may have
    outlived the database's patience); here the "worker" runs inside the test's transaction, whose
    connection must stay open (PostgreSQL closes a connection found inside a transaction)."""
    monkeypatch.setattr("apps.jobs.runner.close_old_connections", lambda: None)
    monkeypatch.setattr("apps.async_jobs.services.close_old_connections", lambda: None)
    monkeypatch.setattr("apps.jobs.tasks.close_old_connections", lambda: None)
