"""The OpenAPI document behind /api/docs/ (/api/schema/): StreamHub's three API dialects in one
document, in the order an operator reads them: OME v1, then WCS v2, then WCS v3 (whose document,
built in apps.api_wcs_v3.schema, is merged in). WCS's own documents (/rest-api/openapi_spec,
/rest-api/v3/openapi_spec) stay as WCS clients expect them."""

from __future__ import annotations

OME_PREFIX, WCS_V3_PREFIX, WCS_V2_PREFIX = "/v1/", "/rest-api/v3/", "/rest-api/"
DESCRIPTION = """StreamHub's REST APIs, each as existing clients call it:

- **OME v1** (`/v1/...`): OvenMediaEngine's API: virtual hosts, applications, output profiles, streams
  (pull, delete), recording, push, HLS dump, statistics. `Authorization: Basic base64(AccessToken)`;
  answers are OME's envelope `{"statusCode", "message", "response"}`.
- **WCS v2** (`/rest-api/...`): Flashphoner Web Call Server: `POST` JSON to `/rest-api/<group>/<method>`
  (streams, recorder, pull, push, RTSP, VOD, MPEG-TS, HLS, CDN, mixer, multi-recorder, transcoder, SIP
  calls, connections). No auth unless enabled, then HTTP Basic against Django users. WCS's own
  document: `/rest-api/openapi_spec`, UI at `/rest-api-spec/`.
- **WCS v3** (`/rest-api/v3/...`): the same methods; long ones run as jobs (`Prefer: respond-async,
  wait=N, timeout=M`: 200 with the result within the wait, 202 with the Job otherwise, see `/jobs/find`).
  WCS's own document: `/rest-api/v3/openapi_spec`, UI at `/rest-api-spec/v3/`.
"""


def _dialect(path: str) -> int:
    if path.startswith(OME_PREFIX):
        return 0
    return 2 if path.startswith(WCS_V3_PREFIX) else 1


def _retag(item: dict, old: str, new: str) -> None:
    for operation in item.values():
        if isinstance(operation, dict) and "tags" in operation:
            operation["tags"] = [tag.replace(old, new, 1) for tag in operation["tags"]]


def order_dialects(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: in the main document (the one with OME's paths), name WCS's tags by
    version, merge in WCS v3, order paths and tags OME v1 → WCS v2 → WCS v3."""
    paths = result.get("paths", {})
    if not any(path.startswith(OME_PREFIX) for path in paths):
        return result  # WCS's own documents (and the v3 build below) stay as they are
    from apps.api_wcs_v3.schema import v3_document

    for item in paths.values():
        _retag(item, "WCS: ", "WCS v2: ")
    v3 = v3_document()
    for path, item in v3["paths"].items():
        _retag(item, "WCS: ", "WCS v3: ")
        paths[path] = item
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in v3.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)
    ordered = dict(sorted(paths.items(), key=lambda entry: (_dialect(entry[0]), entry[0])))
    result["paths"] = ordered
    tags: list[str] = []
    for item in ordered.values():
        for operation in item.values():
            for tag in operation.get("tags", []) if isinstance(operation, dict) else []:
                if tag not in tags:
                    tags.append(tag)
    # Swagger UI lists tag groups in the order of this list.
    result["tags"] = [{"name": tag} for tag in sorted(tags, key=lambda tag: (_tag_rank(tag), tags.index(tag)))]
    result.setdefault("info", {})["description"] = DESCRIPTION
    return result


def _tag_rank(tag: str) -> int:
    if tag.startswith("OME"):
        return 0
    return 2 if tag.startswith("WCS v3") else 1
