"""Fixtures of the WCS v2 tests: a DRF client that sends JSON bodies."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def wcs() -> APIClient:
    client = APIClient()
    client.default_format = "json"
    return client
