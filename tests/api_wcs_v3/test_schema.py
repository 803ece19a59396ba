"""WCS v3's OpenAPI document (/rest-api/v3/openapi_spec) and its Swagger UI: valid OpenAPI 3, every
v3 route documented, Prefer and 202 on the long methods only, the jobs endpoints."""

from __future__ import annotations

import pytest
import yaml
from django.test import Client
from openapi_spec_validator import validate

from apps.api_wcs.urls import METHODS
from apps.api_wcs_v3.operations import is_long

pytestmark = pytest.mark.django_db


def test_the_v3_document_is_valid_and_documents_every_route():
    response = Client().get("/rest-api/v3/openapi_spec")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    validate(spec)
    routes = {f"/rest-api/v3/{method.route}" for method in METHODS}
    assert set(spec["paths"]) == routes | {"/rest-api/v3/jobs/find", "/rest-api/v3/jobs/{id}"}
    for method in METHODS:
        operation = spec["paths"][f"/rest-api/v3/{method.route}"]["post"]
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        if is_long(method):
            assert "Prefer" in headers and "202" in operation["responses"], method.route
            # A job its timeout cancelled within the wait: 200 with the Job (no 504, which WCS never answers).
            done = operation["responses"]["200"]
            assert "CANCELLED" in done["description"] and "504" not in operation["responses"], method.route
            assert "#/components/schemas/Job" in str(done["content"]), method.route
        else:
            assert "Prefer" not in headers and "202" not in operation["responses"], method.route
    assert is_long(next(m for m in METHODS if m.route == "vod/startup"))
    job = spec["components"]["schemas"]["Job"]
    assert job["properties"]["state"]["enum"] == ["PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED"]


def test_the_v3_swagger_ui_points_at_the_v3_document():
    page = Client().get("/rest-api-spec/v3/")
    assert page.status_code == 200
    assert "/rest\\u002Dapi/v3/openapi_spec" in page.content.decode()  # as Django escapes it in JS
