"""The daemon serves the page with a strict CSP, and the client's and the admin's static files
compressed and cacheable (collected by ``chatserver collectstatic`` as ``make run`` does)."""

import gzip
import re
import urllib.request

import pytest

pytestmark = pytest.mark.timeout(300)


def fetch(url, encoding=None):
    request = urllib.request.Request(url)
    if encoding:
        request.add_header("Accept-Encoding", encoding)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


def test_the_page_has_a_csp_without_unsafe_inline(web_daemon):
    status, headers, body = fetch(web_daemon.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    text = body.decode()
    assert 'src="/static/web/app.js"' in text
    # Nothing inline that the policy would have to allow.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", text) == []
    assert re.findall(r"\s(?:style|on[a-z]+)=", text) == []


@pytest.mark.parametrize(
    "path", ["/static/web/app.js", "/static/web/app.css", "/static/admin/css/base.css"]
)
def test_static_files_are_compressed_and_cached(web_daemon, path):
    status, headers, raw = fetch(web_daemon.url + path)
    assert status == 200 and "max-age=" in headers["Cache-Control"] and headers["ETag"]
    for encoding in ("br", "gzip"):
        status, headers, body = fetch(web_daemon.url + path, encoding)
        assert headers["Content-Encoding"] == encoding
        assert len(body) < len(raw)
    assert gzip.decompress(fetch(web_daemon.url + path, "gzip")[2]) == raw


def test_admin_pages_are_styled(web_daemon):
    status, _, body = fetch(web_daemon.url + "/admin/login/")
    assert status == 200
    stylesheet = body.decode().split('href="/static/admin/css/')[1].split('"')[0]
    assert fetch(f"{web_daemon.url}/static/admin/css/{stylesheet}")[0] == 200
