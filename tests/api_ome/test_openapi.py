"""The OpenAPI schema documents every OME endpoint with the spec's shapes; Swagger UI works offline."""

import pytest
import yaml
from django.test import Client

pytestmark = pytest.mark.django_db

OME_OPERATIONS = {
    ("/v1/vhosts", "get"),
    ("/v1/vhosts", "post"),
    ("/v1/vhosts:reloadAllCertificates", "post"),
    ("/v1/vhosts/{vhost}", "get"),
    ("/v1/vhosts/{vhost}", "delete"),
    ("/v1/vhosts/{vhost}:reloadCertificate", "post"),
    ("/v1/vhosts/{vhost}/apps", "get"),
    ("/v1/vhosts/{vhost}/apps", "post"),
    ("/v1/vhosts/{vhost}/apps/{app}", "get"),
    ("/v1/vhosts/{vhost}/apps/{app}", "patch"),
    ("/v1/vhosts/{vhost}/apps/{app}", "delete"),
    ("/v1/vhosts/{vhost}/apps/{app}/outputProfiles", "get"),
    ("/v1/vhosts/{vhost}/apps/{app}/outputProfiles", "post"),
    ("/v1/vhosts/{vhost}/apps/{app}/outputProfiles/{profile}", "get"),
    ("/v1/vhosts/{vhost}/apps/{app}/outputProfiles/{profile}", "put"),
    ("/v1/vhosts/{vhost}/apps/{app}/outputProfiles/{profile}", "delete"),
}


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    """The schema as /api/schema/ serves it, generated once for the module (seconds of CPU each time)."""
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.load(response.content, Loader=yaml.CSafeLoader)


def test_every_ome_endpoint_is_documented(schema):
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert OME_OPERATIONS <= documented


def test_ome_endpoints_need_the_access_token(schema):
    assert schema["components"]["securitySchemes"]["omeAccessToken"]["in"] == "header"
    assert schema["paths"]["/v1/vhosts"]["get"]["security"] == [{"omeAccessToken": []}]


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_shapes_are_the_specs_not_free_form(schema):
    app_post = schema["paths"]["/v1/vhosts/{vhost}/apps"]["post"]
    request = resolve(schema, app_post["requestBody"]["content"]["application/json"]["schema"]["items"])
    assert {"name", "type", "outputProfiles", "providers", "publishers"} <= set(request["properties"])
    assert set(request["required"]) == {"name", "type"}

    envelope = resolve(schema, app_post["responses"]["200"]["content"]["application/json"]["schema"]["items"])
    assert set(envelope["properties"]) == {"statusCode", "message", "response"}
    app = resolve(schema, envelope["properties"]["response"])
    profiles = resolve(schema, app["properties"]["outputProfiles"])
    profile = resolve(schema, profiles["properties"]["outputProfile"]["items"])
    encodes = resolve(schema, profile["properties"]["encodes"])
    video = resolve(schema, encodes["properties"]["videos"]["items"])
    assert {"codec", "bitrate", "width", "height", "framerate", "bypass", "preset"} <= set(video["properties"])

    vhost = schema["paths"]["/v1/vhosts/{vhost}"]["get"]["responses"]
    assert {"200", "401", "404"} <= set(vhost)


def test_swagger_ui_is_served_without_internet(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    # Every script and stylesheet comes from our own static files (the sidecar), not a CDN.
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html


def test_the_docs_read_ome_v1_then_wcs_v2_then_wcs_v3(schema):
    def dialect(path: str) -> str:
        return "ome" if path.startswith("/v1/") else "v3" if path.startswith("/rest-api/v3/") else "v2"

    order = [dialect(path) for path in schema["paths"]]
    assert order == sorted(order, key=["ome", "v2", "v3"].index) and set(order) == {"ome", "v2", "v3"}
    tags = [tag["name"] for tag in schema["tags"]]
    assert tags[0].startswith("OME v1: ") and tags[-1].startswith("WCS v3: ")
    assert [tag.split(":")[0] for tag in tags] == sorted(
        (tag.split(":")[0] for tag in tags), key=["OME v1", "WCS v2", "WCS v3"].index
    )
    assert "/rest-api/v3/jobs/find" in schema["paths"]
    assert schema["paths"]["/rest-api/v3/stream/find"]["post"]["tags"] == ["WCS v3: stream"]
    description = schema["info"]["description"]
    assert "as they land" not in description
    assert description.index("OME v1") < description.index("WCS v2") < description.index("WCS v3")


def test_wcs_keeps_its_own_documents(client):
    v2 = yaml.safe_load(client.get("/rest-api/openapi_spec").content)
    assert not any(path.startswith("/v1/") for path in v2["paths"])
    assert v2["paths"]["/rest-api/stream/find"]["post"]["tags"] == ["WCS: stream"]
