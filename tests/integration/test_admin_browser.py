"""The admin as an operator uses it: headless Chromium logs in, creates an application, the API sees it."""

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import OME_AUTH
from tests.integration.conftest import ARTIFACTS, log_in

pytestmark = pytest.mark.browser


def test_an_operator_creates_an_application_in_the_admin(shared_streamhub, browser_page):
    page = browser_page
    log_in(page, shared_streamhub)

    page.goto(f"{shared_streamhub.url}/admin/hosting/application/add/")
    page.select_option("#id_virtual_host", label="default")
    page.fill("#id_name", "studio")
    page.fill("#id_providers", '{"rtmp": {}, "srt": {}}')
    page.fill("#id_publishers", '{"llhls": {}, "webrtc": {}}')
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_contain_text("studio")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-application-created.png"), full_page=True)

    response = requests.get(
        f"{shared_streamhub.url}/v1/vhosts/default/apps/studio", headers={"Authorization": OME_AUTH}
    )
    assert response.status_code == 200
    app = response.json()["response"]
    assert app["providers"] == {"rtmp": {}, "srt": {}}
    assert app["publishers"] == {"llhls": {}, "webrtc": {}}
    assert [profile["name"] for profile in app["outputProfiles"]["outputProfile"]] == ["bypass"]

    # The changelist filters and searches.
    page.goto(f"{shared_streamhub.url}/admin/hosting/application/?q=studio")
    expect(page.locator("#result_list")).to_contain_text("studio")
    expect(page.locator("#result_list")).not_to_contain_text("app\n")


def test_the_admin_refuses_invalid_encodes(shared_streamhub, browser_page):
    page = browser_page
    log_in(page, shared_streamhub)
    page.goto(f"{shared_streamhub.url}/admin/hosting/outputprofile/add/")
    page.select_option("#id_application", label="default/app")
    page.fill("#id_name", "broken")
    page.fill("#id_output_stream_name", "${OriginStreamName}_broken")
    page.fill("#id_encodes", '{"videos": [{"bitrate": 1000}]}')
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("A video encode needs a codec unless bypass is true.")
    response = requests.get(
        f"{shared_streamhub.url}/v1/vhosts/default/apps/app/outputProfiles", headers={"Authorization": OME_AUTH}
    )
    assert response.json()["response"] == ["bypass_stream"]
