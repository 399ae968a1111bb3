"""/docs and /redoc work with no internet: every asset they load is served by us."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Links(HTMLParser):
    """Collects every src and href attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_same_origin_assets(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    links = _Links()
    links.feed(response.text)
    assert links.urls, response.text
    # Absolute URLs, or protocol-relative ones, would reach for a CDN.
    assert [u for u in links.urls if "//" in u] == []
    assert "cdn." not in response.text and "fonts.googleapis" not in response.text
    for url in links.urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        kind = EXPECTED_TYPES[url[url.rindex(".") :]]
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])


async def test_the_openapi_schema_the_pages_read_is_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "hookagent"
    assert "/docs" not in schema["paths"] and "/redoc" not in schema["paths"]
