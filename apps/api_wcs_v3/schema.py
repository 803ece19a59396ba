"""The OpenAPI document of WCS v3 (/rest-api/v3/openapi_spec): drf-spectacular cannot read v3's plain
async views, so the document is v2's, generated from the same `Method`s, moved under /rest-api/v3/,
with what v3 adds: the `Prefer` header, the `202 Accepted` Job answer and the `200` Job answer of a
job cancelled by its timeout on long methods, and the /jobs/find and /jobs/{id} endpoints."""

from __future__ import annotations

import copy

from django.http import HttpRequest, HttpResponse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiYamlRenderer
from drf_spectacular.settings import patched_settings

from apps.api_wcs.urls import METHODS
from apps.api_wcs_v3.operations import V3_RESULTS, is_long

V2_PREFIX = "/rest-api/"
V3_PREFIX = "/rest-api/v3/"
SETTINGS = {
    "TITLE": "StreamHub WCS REST API v3",
    "DESCRIPTION": (
        "Flashphoner Web Call Server REST API v3: POST JSON to /rest-api/v3/<group>/<method>. Long methods "
        "run as jobs: `Prefer: respond-async, wait=N, timeout=M` answers 200 with the result when the job "
        "ends within `wait` seconds, 202 with the Job otherwise (see /jobs/find)."
    ),
    "VERSION": "3.0.0",
}
JOB_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "method": {"type": "string", "example": "vod/startup"},
        "state": {"type": "string", "enum": ["PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED"]},
        "request": {"type": "object", "additionalProperties": True},
        "result": {"nullable": True},
        "error": {"type": "string", "nullable": True},
        "createdTime": {"type": "integer"},
        "startedTime": {"type": "integer", "nullable": True},
        "finishedTime": {"type": "integer", "nullable": True},
    },
}
PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "example": "respond-async, wait=3, timeout=10",
    "description": "wait: seconds to wait for the job (at most 5); timeout: seconds before it is cancelled "
    "(at most 60).",
}


def v3_document() -> dict:
    with patched_settings(SETTINGS):
        schema = SchemaGenerator(urlconf="apps.api_wcs.schema_urls").get_schema(request=None, public=True)
    schema = copy.deepcopy(schema)
    schema["components"].setdefault("schemas", {})["Job"] = JOB_SCHEMA
    job = {"$ref": "#/components/schemas/Job"}
    long_routes = {method.route for method in METHODS if is_long(method)}
    paths = {}
    for path, item in schema["paths"].items():
        route = path.removeprefix(V2_PREFIX)
        for each in item.values():  # post, and get where v2 allows it
            each["operationId"] = each["operationId"].replace("wcs_", "wcs_v3_", 1)
        operation = item["post"]
        if route in long_routes:
            operation.setdefault("parameters", []).append(PREFER)
            done = operation["responses"].get("200", {})
            result = done.get("content", {}).get("application/json", {}).get("schema")
            if route in V3_RESULTS:
                result = {"$ref": f"#/components/schemas/{V3_RESULTS[route]}"}
            done["description"] = (
                "Done within the wait: the method's answer (" + ("below" if result else "empty body") + "); "
                "or the Job in its final state CANCELLED (`error`: the reason) when its timeout cancelled it "
                "within the wait"
            )
            done["content"] = {"application/json": {"schema": {"oneOf": [result, job]} if result else job}}
            operation["responses"]["200"] = done
            operation["responses"]["202"] = {
                "description": "The job goes on: its state and, later, its result (see /jobs/find)",
                "content": {"application/json": {"schema": job}},
            }
        paths[V3_PREFIX + route] = item
    paths[V3_PREFIX + "jobs/find"] = {
        "post": {
            "operationId": "wcs_v3_jobs_find",
            "summary": "Find jobs by id, state or method",
            "tags": ["WCS: jobs"],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "state": {"type": "string"},
                                "method": {"type": "string"},
                            },
                        }
                    }
                }
            },
            "responses": {
                "200": {
                    "description": "Jobs",
                    "content": {"application/json": {"schema": {"type": "array", "items": job}}},
                },
                "404": {"description": "Jobs not found"},
            },
        }
    }
    paths[V3_PREFIX + "jobs/{id}"] = {
        "get": {
            "operationId": "wcs_v3_job",
            "summary": "One job (where a 202 points)",
            "tags": ["WCS: jobs"],
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
            ],
            "responses": {
                "200": {"description": "The job", "content": {"application/json": {"schema": job}}},
                "404": {"description": "Job not found"},
            },
        }
    }
    schema["paths"] = paths
    return schema


def openapi_spec(request: HttpRequest) -> HttpResponse:
    body = OpenApiYamlRenderer().render(v3_document(), renderer_context={})
    return HttpResponse(body, content_type="application/vnd.oai.openapi; charset=utf-8")
