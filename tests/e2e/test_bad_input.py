"""Bad input: every mistake gets the right status and a clear detail, and changes nothing."""

import hashlib
import json
import secrets
import socket
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import (MIB, PART_SIZE, assert_problem, complete, create_asset, get_asset,
                      put_part, put_parts, random_bytes, raw_request, sha256, sigv4_headers, wait_master, wait_ingest)


# --------------------------------------------------------------------------- helpers


class Pending:
    """An asset in "uploading" with some parts sent, and what it looked like."""

    def __init__(self, api, token, data, send=None):
        self.api, self.token, self.data = api, token, data
        self.created = create_asset(api, token, data)
        self.id = self.created["assetId"]
        self.parts = put_parts(self.created, data, only=send)
        self.asset_before = get_asset(api, token, self.id)
        self.upload_before = self.upload_status()

    def upload_status(self):
        r = self.api("GET", f"/api/v1/assets/{self.id}/upload", self.token)
        assert r.status_code == 200, r.text
        body = r.json()
        return [(p["partNumber"], p["size"], p["etag"].strip('"')) for p in body["received"]]

    def complete(self, parts):
        return complete(self.api, self.token, self.id, parts)

    def assert_unchanged(self):
        assert get_asset(self.api, self.token, self.id) == self.asset_before
        assert self.upload_status() == self.upload_before

    def assert_still_completes(self):
        """The failed attempt did not break the upload: the right parts complete it."""
        r = self.complete(self.parts)
        assert r.status_code == 202, r.text
        assert wait_master(self.api, self.token, self.id)["content_hash"] == sha256(self.data)


def newest_asset_id(api, token):
    r = api("GET", "/api/v1/assets", token, params={"limit": 1})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0]["id"] if items else None


BAD_ETAG = '"' + "0" * 32 + '"'


# --------------------------------------------------------------------------- complete


def test_complete_with_wrong_etag(api, editor):
    p = Pending(api, editor.token, random_bytes(PART_SIZE + 100))
    bad = [p.parts[0], {"partNumber": 2, "etag": BAD_ETAG}]
    assert_problem(p.complete(bad), 400, "InvalidPart")
    p.assert_unchanged()
    p.assert_still_completes()


def test_complete_naming_a_part_never_uploaded(api, editor):
    p = Pending(api, editor.token, random_bytes(PART_SIZE + 100), send={1})
    assert_problem(p.complete(p.parts + [{"partNumber": 2, "etag": BAD_ETAG}]), 400,
                   "InvalidPart")
    p.assert_unchanged()


def test_complete_omitting_a_part_is_size_mismatch(api, editor):
    p = Pending(api, editor.token, random_bytes(PART_SIZE + 100))
    assert_problem(p.complete(p.parts[:1]), 400)
    p.assert_unchanged()
    p.assert_still_completes()


def test_complete_out_of_order(api, editor):
    p = Pending(api, editor.token, random_bytes(2 * PART_SIZE + 100))
    assert_problem(p.complete([p.parts[1], p.parts[0], p.parts[2]]), 400, "InvalidPartOrder")
    p.assert_unchanged()
    p.assert_still_completes()


def test_complete_with_duplicate_part_number(api, editor):
    p = Pending(api, editor.token, random_bytes(PART_SIZE + 100))
    assert_problem(p.complete([p.parts[0], p.parts[0], p.parts[1]]), 400, "InvalidPartOrder")
    p.assert_unchanged()


def assert_part_refused(r):
    assert r.status_code == 400, f"part upload: {r.status_code} {r.text[:300]}"
    assert b"<Code>InvalidPart</Code>" in r.content, r.text[:300]


def test_short_non_last_part_is_refused_at_put(api, editor):
    """Part sizes are fixed when the asset is created: a short part is refused at once
    (plain S3 multipart uploads keep the EntityTooSmall check at completion)."""
    data = random_bytes(PART_SIZE + 100)
    p = Pending(api, editor.token, data, send=set())
    r = requests.put(p.created["parts"][0]["url"], data=data[:MIB], timeout=30)
    assert_part_refused(r)
    assert b"must be" in r.content
    p.assert_unchanged()
    p.parts = put_parts(p.created, data)
    p.assert_still_completes()


def test_part_longer_than_its_size_is_refused_at_put(api, editor):
    """The last part cannot carry more than the declared size leaves for it."""
    data = random_bytes(PART_SIZE + 100)
    p = Pending(api, editor.token, data, send={1})
    r = requests.put(p.created["parts"][1]["url"], data=data[PART_SIZE:] + b"extra bytes",
                     timeout=30)
    assert_part_refused(r)
    p.assert_unchanged()
    p.parts = put_parts(p.created, data)
    p.assert_still_completes()


def test_part_beyond_the_last_is_refused(api, editor):
    """A URL for a part number past the plan can only be made by hand; it is refused too."""
    data = random_bytes(PART_SIZE + 100)
    p = Pending(api, editor.token, data, send=set())
    s3 = api.s3(editor)
    u = urlsplit(p.created["parts"][0]["url"])
    key = u.path.split("/", 2)[2]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="archive", Key=key, UploadId=p.created["uploadId"], PartNumber=3,
                       Body=b"x")
    assert e.value.response["Error"]["Code"] == "InvalidPart"
    p.assert_unchanged()


@pytest.mark.parametrize("body", [{"parts": []}, {"parts": "1"}, {}, {"parts": [{"etag": "x"}]},
                                  {"parts": [{"partNumber": "one", "etag": BAD_ETAG}]}],
                         ids=["empty", "string", "no-parts", "no-number", "number-string"])
def test_complete_with_malformed_body(api, editor, body):
    p = Pending(api, editor.token, random_bytes(1000))
    r = api("POST", f"/api/v1/assets/{p.id}/complete", editor.token, json=body)
    assert_problem(r, 400)
    p.assert_unchanged()


def test_complete_by_viewer_is_403(api, editor, viewer):
    p = Pending(api, editor.token, random_bytes(1000))
    assert_problem(complete(api, viewer.token, p.id, p.parts), 403)
    p.assert_unchanged()


def test_complete_unknown_asset_is_404(api, editor):
    r = complete(api, editor.token, "00000000-0000-4000-8000-000000000000",
                 [{"partNumber": 1, "etag": BAD_ETAG}])
    assert_problem(r, 404)


# --------------------------------------------------------------------------- presigned URLs


def tamper_signature(url):
    parts = urlsplit(url)
    query = [(k, ("f" if v[0] != "f" else "e") + v[1:]) if k == "X-Amz-Signature" else (k, v)
             for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_part_url_with_tampered_signature_is_403(api, editor):
    data = random_bytes(1000)
    p = Pending(api, editor.token, data, send=set())
    r = requests.put(tamper_signature(p.created["parts"][0]["url"]), data=data, timeout=30)
    assert r.status_code == 403
    assert b"SignatureDoesNotMatch" in r.content
    p.assert_unchanged()


def test_part_url_for_another_part_number_is_403(api, editor):
    """partNumber is inside the signed query: changing it breaks the signature."""
    data = random_bytes(PART_SIZE + 100)
    p = Pending(api, editor.token, data, send=set())
    parts = urlsplit(p.created["parts"][0]["url"])
    query = [(k, "2" if k == "partNumber" else v) for k, v in parse_qsl(parts.query)]
    r = requests.put(urlunsplit(parts._replace(query=urlencode(query))), data=b"x", timeout=30)
    assert r.status_code == 403
    p.assert_unchanged()


def send_truncated(url, declared, sent):
    """Starts a PUT promising `declared` bytes, sends `sent` of them, then hangs up."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                  f"Content-Length: {declared}\r\n\r\n".encode() + random_bytes(sent))


def test_truncated_part_upload_is_not_recorded(api, editor):
    data = random_bytes(PART_SIZE + 100)
    p = Pending(api, editor.token, data, send={2})
    send_truncated(p.created["parts"][0]["url"], PART_SIZE, MIB)
    # The hang-up is noticed asynchronously: give a torn part time to (wrongly) appear.
    time.sleep(0.5)
    p.assert_unchanged()
    whole = f'"{hashlib.md5(data[:PART_SIZE]).hexdigest()}"'
    assert_problem(p.complete([{"partNumber": 1, "etag": whole}] + p.parts), 400, "InvalidPart")


def test_expired_presigned_url_is_access_denied(api, editor):
    s3 = api.s3(editor)
    key = f"tests/expire-{secrets.token_hex(4)}.bin"
    s3.put_object(Bucket="archive", Key=key, Body=b"soon gone")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "archive", "Key": key},
                                    ExpiresIn=1)
    time.sleep(2)  # nothing to poll: only the clock makes a URL expire
    r = requests.get(url, timeout=30)
    assert r.status_code == 403
    assert b"<Code>AccessDenied</Code>" in r.content
    assert b"expired" in r.content.lower()


def test_expired_presigned_put_writes_nothing(api, editor):
    s3 = api.s3(editor)
    key = f"tests/expire-put-{secrets.token_hex(4)}.bin"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "archive", "Key": key},
                                    ExpiresIn=1)
    time.sleep(2)
    r = requests.put(url, data=b"late", timeout=30)
    assert r.status_code == 403
    assert b"expired" in r.content.lower()
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="archive", Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_presigned_url_with_excessive_expiry_is_rejected(api, editor):
    """SigV4 caps X-Amz-Expires at 7 days."""
    s3 = api.s3(editor)
    url = s3.generate_presigned_url("get_object",
                                    Params={"Bucket": "archive", "Key": "tests/whatever"},
                                    ExpiresIn=8 * 24 * 3600)
    r = requests.get(url, timeout=30)
    assert r.status_code in (400, 403)


# --------------------------------------------------------------------------- S3 keys


@pytest.mark.parametrize("path,statuses", [
    ("/archive/tests/../escape-{n}.bin", {400}),
    ("/archive/tests/./dot-{n}.bin", {400}),
    ("/archive//abs-{n}.bin", {400}),
    ("/archive/tests//double-{n}.bin", {400}),
    ("/archive/..", {400}),
    # Encoded forms: the signer signs the path as sent, a server that canonicalises the
    # decoded key sees a different signature; either refusal is fine.
    ("/archive/tests/%2e%2e/enc-{n}.bin", {400, 403}),
    ("/archive/tests/nul%00-{n}.bin", {400, 403}),
], ids=["dotdot", "dot", "absolute", "empty-segment", "bare-dotdot", "encoded-dotdot", "nul"])
def test_s3_put_with_unsafe_key_is_refused(api, editor, path, statuses):
    n = secrets.token_hex(4)
    url = api.s3_url + path.format(n=n)
    body = b"traversal attempt"
    status, _, reply = raw_request("PUT", url, headers=sigv4_headers("PUT", url, editor, body),
                                   body=body)
    assert status in statuses, (status, reply)
    # Nothing landed under a name the path could normalise to.
    for key in (f"escape-{n}.bin", f"tests/dot-{n}.bin", f"abs-{n}.bin",
                f"tests/double-{n}.bin", f"enc-{n}.bin", f"tests/enc-{n}.bin"):
        check = f"{api.s3_url}/archive/{key}"
        assert raw_request("HEAD", check, headers=sigv4_headers("HEAD", check, editor))[0] == 404


def test_s3_get_cannot_escape_the_store(api, editor):
    url = api.s3_url + "/archive/../../../../../../etc/passwd"
    status, _, body = raw_request("GET", url, headers=sigv4_headers("GET", url, editor))
    assert status in (400, 404), status
    assert b"root:" not in body


def test_s3_key_too_long_is_rejected(api, editor):
    key = "tests/" + "k" * 1100
    url = f"{api.s3_url}/archive/{key}"
    status, _, body = raw_request("PUT", url, headers=sigv4_headers("PUT", url, editor, b"x"),
                                  body=b"x")
    assert status == 400, body


# --------------------------------------------------------------------------- JSON bodies


def post_assets(api, token, body, content_type="application/json"):
    return api("POST", "/api/v1/assets", token, data=body,
               headers={"Content-Type": content_type})


VALID = {"filename": "x.mp4", "size": 10, "mime_type": "video/mp4"}


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"filename": "x.bin", "size": 10,',
    b"",
    b'["filename", "x.bin"]',
    b'{"filename": "\xff\xfe.mp4", "size": 10, "mime_type": "video/mp4"}',
    b'{"filename": "x.mp4", "size": 10, "mime_type": "video/mp4"} trailing',
], ids=["garbage", "truncated", "empty", "array", "invalid-utf8", "trailing-data"])
def test_invalid_json_is_400(api, editor, body):
    before = newest_asset_id(api, editor.token)
    assert_problem(post_assets(api, editor.token, body), 400)
    assert newest_asset_id(api, editor.token) == before


def test_deeply_nested_json_is_rejected(api, editor):
    depth = 100_000
    body = json.dumps({**VALID, "editorial_metadata": 0})[:-2].encode()
    body += b"[" * depth + b"]" * depth + b"}"
    r = post_assets(api, editor.token, body)
    assert r.status_code in (400, 413), r.status_code
    assert api("GET", "/healthz").status_code == 200


def test_oversized_json_body_is_413(api, editor):
    before = newest_asset_id(api, editor.token)
    body = json.dumps({**VALID, "description": "d" * (MIB + 10)}).encode()
    assert_problem(post_assets(api, editor.token, body), 413)
    assert newest_asset_id(api, editor.token) == before


def test_oversized_patch_body_is_413(api, editor):
    asset = create_asset(api, editor.token, 10)
    before = get_asset(api, editor.token, asset["assetId"])
    body = json.dumps({"description": "d" * (MIB + 10)}).encode()
    r = api("PATCH", f"/api/v1/assets/{asset['assetId']}", editor.token, data=body,
            headers={"Content-Type": "application/json"})
    assert_problem(r, 413)
    assert get_asset(api, editor.token, asset["assetId"]) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_non_json_content_type_is_415(api, editor, content_type):
    before = newest_asset_id(api, editor.token)
    r = post_assets(api, editor.token, json.dumps(VALID).encode(), content_type)
    assert_problem(r, 415)
    assert newest_asset_id(api, editor.token) == before


def test_json_content_type_with_charset_is_accepted(api, editor):
    r = post_assets(api, editor.token, json.dumps(VALID).encode(),
                    "application/json; charset=utf-8")
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("body", [
    {**VALID, "colour": "red"},
    {**VALID, "status": "ready"},
    {**VALID, "content_hash": "0" * 64},
    {"size": 10, "mime_type": "video/mp4"},
    {"filename": "x.mp4", "mime_type": "video/mp4"},
    {**VALID, "size": -1},
    {**VALID, "size": "10"},
    {**VALID, "size": 1.5},
    {**VALID, "filename": ""},
    {**VALID, "tags": "a,b"},
    {**VALID, "title": 7},
    {**VALID, "editorial_metadata": [1, 2]},
], ids=["unknown-field", "status", "content-hash", "no-filename", "no-size", "negative-size",
        "string-size", "fractional-size", "empty-filename", "tags-string", "title-number",
        "metadata-array"])
def test_bad_create_is_400(api, editor, body):
    before = newest_asset_id(api, editor.token)
    r = api("POST", "/api/v1/assets", editor.token, json=body)
    problem = assert_problem(r, 400)
    assert problem["detail"], "a 400 must say what is wrong"
    assert newest_asset_id(api, editor.token) == before


def test_create_larger_than_max_object_size_is_rejected(api, editor):
    before = newest_asset_id(api, editor.token)
    r = api("POST", "/api/v1/assets", editor.token, json={**VALID, "size": 6 * 1024 ** 4})
    assert r.status_code in (400, 413), r.text
    assert newest_asset_id(api, editor.token) == before


def test_unknown_field_detail_names_the_field(api, editor):
    r = api("POST", "/api/v1/assets", editor.token, json={**VALID, "colour": "red"})
    assert "colour" in assert_problem(r, 400)["detail"]


# --------------------------------------------------------------------------- HTTP framing


def raw_http(port, request_bytes, timeout=30):
    """Sends raw bytes; returns what the server answered before closing (maybe b"")."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    return b"".join(chunks)


def api_port(api):
    return urlsplit(api.base_url).port


def test_headers_over_32k_are_431(api):
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (40 * 1024)
               + b"\r\nConnection: close\r\n\r\n")
    reply = raw_http(api_port(api), request)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_many_headers_over_32k_are_431(api):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(400))
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
               + b"Connection: close\r\n\r\n")
    reply = raw_http(api_port(api), request)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_s3_headers_over_32k_are_refused(api):
    """431, or S3's own answer: 400 RequestHeaderSectionTooLarge."""
    request = (b"GET /archive/tests/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
               + b"a" * (40 * 1024) + b"\r\nConnection: close\r\n\r\n")
    reply = raw_http(urlsplit(api.s3_url).port, request)
    assert reply.startswith(b"HTTP/1.1 431") or (
        reply.startswith(b"HTTP/1.1 400")
        and b"<Code>RequestHeaderSectionTooLarge</Code>" in reply), reply[:400]


def test_garbage_request_line_gets_400(api):
    reply = raw_http(api_port(api), b"THIS IS NOT HTTP\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert api("GET", "/healthz").status_code == 200


def test_content_length_larger_than_body_does_not_hang_the_server(api, editor):
    """A client that promises more bytes than it sends is cut off; others are served."""
    with socket.create_connection(("127.0.0.1", api_port(api)), timeout=30) as s:
        s.sendall(b"POST /api/v1/assets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + editor.token.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"filename\":")
        assert api("GET", "/healthz", timeout=5).status_code == 200


def test_api_path_traversal_is_not_served(api, viewer):
    r = api("GET", "/api/v1/assets/..%2f..%2fme", viewer.token)
    assert r.status_code in (400, 404)


# --------------------------------------------------------------------------- early answers


def slow_client(base_url, head, body, pause):
    """Sends the request head, waits, sends the body, then reads the answer: a client that
    was still writing when the server decided."""
    u = urlsplit(base_url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            step = len(body) // 4 + 1
            for i in range(0, len(body), step):
                time.sleep(pause)
                sock.sendall(body[i:i + step])
        except OSError as e:
            return None, f"sending the body failed: {e!r}"
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < 12:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            return None, f"reading the answer failed: {e!r}"
        return data, ""


@pytest.mark.parametrize("chunked", [False, True])
def test_an_early_answer_reaches_a_client_still_sending(api, chunked):
    """The server refuses at the headers (no token), but the client only reads after it has
    sent its body: it must still get the 401 problem, not a reset connection."""
    body = json.dumps({"filename": "x.mp4", "size": 10, "mime_type": "video/mp4",
                       "description": "y" * 200_000}).encode()
    host = urlsplit(api.base_url).netloc
    if chunked:
        head = (f"POST /api/v1/assets HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                f"\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        head = (f"POST /api/v1/assets HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    data, why = slow_client(api.base_url, head, body, pause=0.1)
    assert data is not None, why
    assert data.startswith(b"HTTP/1.1 401"), data[:200]
    assert b"application/problem+json" in data


# --------------------------------------------------------------------------- text that is not UTF-8


def newest_asset_id(api, token):
    r = api("GET", "/api/v1/assets", token, params={"limit": 1})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0]["id"] if items else None


# raw query strings, so the bytes go out as they are; each names the parameter at fault
BAD_DIRECT_QUERIES = [
    ("filename=x.jpg&title=%ff%fe", "query parameter 'title' is not valid UTF-8"),
    ("filename=%c0%afetc.jpg", "query parameter 'filename' is not valid UTF-8"),  # overlong
    ("filename=x.jpg&description=%ed%a0%80", "query parameter 'description' is not valid"),
    ("filename=x.jpg&title=a%01b", "query parameter 'title' must not contain control"),
    ("filename=x.jpg&title=a%0ab", "query parameter 'title' must not contain control"),
    ("filename=x%c2%85.jpg", "query parameter 'filename' must not contain control"),  # C1
    ("filename=x.jpg&description=%f4%90%80%80", "query parameter 'description' is not valid"),
]


@pytest.mark.parametrize("query,detail", BAD_DIRECT_QUERIES)
def test_direct_upload_refuses_text_that_is_not_utf8_and_stores_nothing(api, editor, query,
                                                                       detail):
    before = newest_asset_id(api, editor.token)
    r = api("POST", "/api/v1/assets/direct?" + query, editor.token,
            headers={"Content-Type": "image/jpeg"}, data=b"\xff\xd8\xff" + b"x" * 100)
    assert detail in assert_problem(r, 400)["detail"]
    assert newest_asset_id(api, editor.token) == before


def test_direct_upload_keeps_line_breaks_in_a_description(api, editor):
    r = api("POST", "/api/v1/assets/direct?filename=l.jpg&description=one%0Atwo%09three&"
            "title=T%C3%ADtulo", editor.token, headers={"Content-Type": "image/jpeg"},
            data=random_bytes(200))
    assert r.status_code == 202, r.text
    asset = get_asset(api, editor.token, r.json()["id"])
    assert asset["description"] == "one\ntwo\tthree"
    assert asset["title"] == "Título"


@pytest.mark.parametrize("path", [
    "/api/v1/search/suggest?q=%ff",
    "/api/v1/workflows?type=%c3",
    "/api/v1/audit?target_id=%fe",
])
def test_query_parameters_that_are_not_utf8_are_400(api, admin_token, path):
    r = api("GET", path, admin_token)
    assert "is not valid UTF-8" in assert_problem(r, 400)["detail"]


@pytest.mark.parametrize("body,field", [
    ({"title": "a\u0007b"}, "title"),
    ({"filename": "tab\there.mp4"}, "filename"),
    ({"tags": ["ok", "bad\u001b[31m"]}, "tags[1]"),
    ({"external_id": "x\u0085"}, "external_id"),
])
def test_json_text_with_control_characters_is_400(api, editor, body, field):
    full = {"filename": "c.mp4", "size": 10, "mime_type": "video/mp4", **body}
    before = newest_asset_id(api, editor.token)
    r = api("POST", "/api/v1/assets", editor.token, json=full)
    detail = assert_problem(r, 400)["detail"]
    assert f"field '{field}' must not contain control characters" in detail, detail
    assert newest_asset_id(api, editor.token) == before


def test_json_that_is_not_utf8_is_400(api, editor):
    # jansson refuses invalid UTF-8 and lone surrogates in JSON text
    for raw in (b'{"filename":"\xff.mp4","size":10,"mime_type":"video/mp4"}',
                b'{"filename":"\\ud800.mp4","size":10,"mime_type":"video/mp4"}'):
        r = api("POST", "/api/v1/assets", editor.token, data=raw,
                headers={"Content-Type": "application/json"})
        assert "invalid JSON" in assert_problem(r, 400)["detail"]


def test_patch_and_key_names_refuse_control_characters(api, editor, admin_token):
    created = create_asset(api, editor.token, 10, title="Kept")
    r = api("PATCH", f"/api/v1/assets/{created['assetId']}", editor.token,
            json={"title": "new\rline"})
    assert "field 'title' must not contain control" in assert_problem(r, 400)["detail"]
    assert get_asset(api, editor.token, created["assetId"])["title"] == "Kept"
    r = api("PATCH", f"/api/v1/assets/{created['assetId']}", editor.token,
            json={"description": "two\nlines"})
    assert r.status_code == 200 and r.json()["description"] == "two\nlines", r.text
    r = api("POST", "/api/v1/keys", admin_token, json={"role": "viewer", "name": "a\u0000b"})
    assert_problem(r, 400)
    r = api("POST", "/api/v1/keys", admin_token, json={"role": "viewer", "name": "a\u007fb"})
    assert "field 'name' must not contain control" in assert_problem(r, 400)["detail"]
