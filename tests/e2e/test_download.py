"""GET|HEAD /api/v1/assets/{id}/download: Range, conditionals, presigned URL modes."""

from email.utils import formatdate
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from conftest import (PART_SIZE, assert_problem, complete, create_asset, put_parts, random_bytes,
                      sha256, upload, wait_master, wait_ingest)

FILENAME = "evening news.mp4"


@pytest.fixture(scope="module")
def stored(api, editor):
    """One completed two-part asset and its bytes."""
    data = random_bytes(PART_SIZE + 777_777)
    asset = upload(api, editor.token, data, filename=FILENAME, mime_type="video/mp4")
    return asset, data


def download(api, token, asset, method="GET", **kw):
    return api(method, f"/api/v1/assets/{asset['id']}/download", token, **kw)


def etag_of(data):
    return f'"{sha256(data)}"'


def test_download_returns_the_bytes(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset)
    assert r.status_code == 200
    assert len(r.content) == len(data)
    assert sha256(r.content) == sha256(data)


def test_download_headers(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset)
    assert r.headers["ETag"] == etag_of(data)
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(data)
    assert r.headers["Content-Type"].startswith("video/mp4")
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "evening news.mp4" in disposition or "evening%20news.mp4" in disposition
    assert "Last-Modified" in r.headers


def test_head_has_headers_and_no_body(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, method="HEAD")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["Content-Length"]) == len(data)
    assert r.headers["ETag"] == etag_of(data)
    assert r.headers["Accept-Ranges"] == "bytes"


def test_download_needs_a_token(api, stored):
    asset, _ = stored
    assert_problem(download(api, None, asset), 401)


def test_download_of_unknown_asset_is_404(api, viewer):
    assert_problem(download(api, viewer.token, {"id": "00000000-0000-4000-8000-000000000000"}),
                   404)


def test_download_before_complete_is_409(api, editor, viewer):
    created = create_asset(api, editor.token, 1000)
    assert_problem(download(api, viewer.token, {"id": created["assetId"]}), 409)


# --------------------------------------------------------------------------- Range


@pytest.mark.parametrize("first,last", [(0, 0), (0, 99), (1000, 1999),
                                        (PART_SIZE - 10, PART_SIZE + 10)],
                         ids=["first-byte", "head", "middle", "across-parts"])
def test_range_returns_206_slice(api, viewer, stored, first, last):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"Range": f"bytes={first}-{last}"})
    assert r.status_code == 206
    assert r.content == data[first:last + 1]
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    assert int(r.headers["Content-Length"]) == last - first + 1


def test_range_past_end_is_clamped(api, viewer, stored):
    asset, data = stored
    first = len(data) - 50
    r = download(api, viewer.token, asset, headers={"Range": f"bytes={first}-{len(data) + 999}"})
    assert r.status_code == 206
    assert r.content == data[first:]
    assert r.headers["Content-Range"] == f"bytes {first}-{len(data) - 1}/{len(data)}"


def test_open_ended_range(api, viewer, stored):
    asset, data = stored
    first = len(data) - 4096
    r = download(api, viewer.token, asset, headers={"Range": f"bytes={first}-"})
    assert r.status_code == 206
    assert r.content == data[first:]


def test_suffix_range(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"Range": "bytes=-500"})
    assert r.status_code == 206
    assert r.content == data[-500:]
    assert r.headers["Content-Range"] == f"bytes {len(data) - 500}-{len(data) - 1}/{len(data)}"


def test_unsatisfiable_range_is_416(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-1", "items=0-1", "bytes=--1"])
def test_malformed_range_is_ignored_or_rejected(api, viewer, stored, header):
    """RFC 9110: an invalid Range is ignored (200 full body); 416 is also acceptable."""
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"Range": header})
    assert r.status_code in (200, 416), r.status_code
    if r.status_code == 200:
        assert sha256(r.content) == sha256(data)


def test_head_with_range(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, method="HEAD", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert r.content == b""


# --------------------------------------------------------------------------- conditionals


def test_if_none_match_with_etag_is_304(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"If-None-Match": etag_of(data)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["ETag"] == etag_of(data)


def test_if_none_match_star_is_304(api, viewer, stored):
    asset, _ = stored
    assert download(api, viewer.token, asset, headers={"If-None-Match": "*"}).status_code == 304


def test_if_none_match_other_etag_is_200(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"If-None-Match": '"0000"'})
    assert r.status_code == 200
    assert sha256(r.content) == sha256(data)


def test_if_match_mismatch_is_412(api, viewer, stored):
    asset, _ = stored
    r = download(api, viewer.token, asset, headers={"If-Match": '"0000"'})
    assert r.status_code == 412


def test_if_match_with_etag_is_200(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"If-Match": etag_of(data)})
    assert r.status_code == 200


def test_if_modified_since_future_is_304(api, viewer, stored):
    asset, _ = stored
    future = formatdate(time.time() + 86400, usegmt=True)
    r = download(api, viewer.token, asset, headers={"If-Modified-Since": future})
    assert r.status_code == 304


def test_if_modified_since_past_is_200(api, viewer, stored):
    asset, _ = stored
    past = formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    r = download(api, viewer.token, asset, headers={"If-Modified-Since": past})
    assert r.status_code == 200


def test_if_range_with_etag_serves_range(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset,
                 headers={"Range": "bytes=0-9", "If-Range": etag_of(data)})
    assert r.status_code == 206
    assert r.content == data[:10]


def test_if_range_with_other_etag_serves_everything(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, headers={"Range": "bytes=0-9", "If-Range": '"0000"'})
    assert r.status_code == 200
    assert len(r.content) == len(data)


# --------------------------------------------------------------------------- URL modes


def presigned_url(api, token, asset):
    r = download(api, token, asset, params={"mode": "url"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] and body["expires_at"]
    return body["url"]


def test_mode_url_downloads_the_bytes(api, viewer, stored):
    asset, data = stored
    url = presigned_url(api, viewer.token, asset)
    assert url.startswith(api.s3_url + "/")
    r = requests.get(url, timeout=60)
    assert r.status_code == 200
    assert sha256(r.content) == sha256(data)


def test_mode_url_supports_range(api, viewer, stored):
    asset, data = stored
    r = requests.get(presigned_url(api, viewer.token, asset), headers={"Range": "bytes=5-14"},
                     timeout=60)
    assert r.status_code == 206
    assert r.content == data[5:15]


def test_mode_url_with_tampered_signature_is_403(api, viewer, stored):
    asset, _ = stored
    parts = urlsplit(presigned_url(api, viewer.token, asset))
    query = parse_qsl(parts.query)
    tampered = [(k, ("0" if v[0] != "0" else "1") + v[1:]) if k == "X-Amz-Signature" else (k, v)
                for k, v in query]
    r = requests.get(urlunsplit(parts._replace(query=urlencode(tampered))), timeout=60)
    assert r.status_code == 403
    assert b"SignatureDoesNotMatch" in r.content


def test_mode_url_for_other_key_is_403(api, viewer, stored):
    """The signature covers the key: the same query on another object fails."""
    asset, _ = stored
    parts = urlsplit(presigned_url(api, viewer.token, asset))
    other = parts._replace(path=parts.path.rsplit("/", 1)[0] + "/other.mp4")
    assert requests.get(urlunsplit(other), timeout=60).status_code == 403


def test_mode_redirect_is_302_to_presigned_url(api, viewer, stored):
    asset, data = stored
    r = download(api, viewer.token, asset, params={"mode": "redirect"})
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(api.s3_url + "/")
    assert sha256(requests.get(location, timeout=60).content) == sha256(data)


def test_unknown_mode_is_400(api, viewer, stored):
    asset, _ = stored
    assert_problem(download(api, viewer.token, asset, params={"mode": "teleport"}), 400)


# --------------------------------------------------------------------------- filenames


def test_filename_with_crlf_cannot_inject_headers(api, editor, viewer):
    data = random_bytes(300)
    r = api("POST", "/api/v1/assets", editor.token,
            json={"filename": "a\r\nX-Injected: yes\r\n.mp4", "size": len(data),
                  "mime_type": "video/mp4"})
    if r.status_code == 400:
        return  # rejecting the filename outright is fine
    assert r.status_code == 201, r.text
    created = r.json()
    assert complete(api, editor.token, created["assetId"],
                    put_parts(created, data)).status_code == 202
    wait_master(api, editor.token, created["assetId"])
    d = download(api, viewer.token, {"id": created["assetId"]})
    assert d.status_code == 200
    assert "X-Injected" not in d.headers
    assert "\n" not in d.headers["Content-Disposition"]


def test_non_ascii_filename_is_in_disposition(api, editor, viewer):
    data = random_bytes(400)
    asset = upload(api, editor.token, data, filename="año nuevo.mp3", mime_type="audio/mpeg")
    r = download(api, viewer.token, asset, method="HEAD")
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "filename*=UTF-8''a%C3%B1o%20nuevo.mp3" in disposition or \
        "año nuevo.mp3" in disposition.encode("latin-1").decode("utf-8", "replace")


# --------------------------------------------------------------------------- audit


def download_audits(api, admin_token, asset):
    items = api("GET", "/api/v1/audit", admin_token,
                params={"target_id": asset["id"], "limit": 1000}).json()["items"]
    return sum(1 for i in items if i["action"] == "asset.download")


def test_a_download_is_audited_once_not_once_per_seek(api, admin_token, viewer, stored):
    asset, _ = stored
    before = download_audits(api, admin_token, asset)
    assert download(api, viewer.token, asset, headers={"Range": "bytes=0-"}).status_code == 206
    for start in (1000, 200_000, 3_000_000):
        r = download(api, viewer.token, asset, headers={"Range": f"bytes={start}-{start + 99}"})
        assert r.status_code == 206
    assert download(api, viewer.token, asset, method="HEAD").status_code == 200
    assert download_audits(api, admin_token, asset) == before + 1
    assert download(api, viewer.token, asset).status_code == 200
    assert download_audits(api, admin_token, asset) == before + 2
