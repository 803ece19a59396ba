"""Fixtures shared by the whole suite: API clients with and without OME credentials."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

OME_TOKEN = "ome-access-token"
# The spec's own example header for the token "ome-access-token".
OME_AUTH = "Basic b21lLWFjY2Vzcy10b2tlbg=="


@pytest.fixture(autouse=True)
def _ome_token(settings):
    settings.OME_ACCESS_TOKEN = OME_TOKEN


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def ome(db) -> APIClient:
    """An OME API client: sends the access token, JSON bodies."""
    client = APIClient(HTTP_AUTHORIZATION=OME_AUTH)
    client.default_format = "json"
    return client


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(token.encode()).decode()
