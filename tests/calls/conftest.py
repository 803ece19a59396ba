"""Fixtures of the call tests: the WCS v2 client."""

from tests.api_wcs.conftest import wcs  # noqa: F401
