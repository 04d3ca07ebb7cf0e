"""The HTTP layer over raw sockets: strict framing (no request smuggling), malformed chunked
bodies, deadlines for slow clients, connection limits per address and in total, keep-alive,
pipelining, HEAD and 100-continue, on both listeners (REST API and S3)."""

import json
import secrets
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import create_asset, wait_until

# deadlines of the servers started here: short, so the tests end soon; the outcomes
# asserted (who is answered, what, in which order) do not depend on the machine's speed
TIGHT_ENV = {
    "ACERVO_HEADER_TIMEOUT": "8s",
    "ACERVO_BODY_TIMEOUT": "2s",
    "ACERVO_BODY_MIN_RATE": "1000",
    "ACERVO_IDLE_TIMEOUT": "3s",
    "ACERVO_MAX_CONNECTIONS": "64",
    "ACERVO_MAX_CONNECTIONS_PER_ADDRESS": "16",
}
PER_ADDRESS = 16
CUT_TIMEOUT = 90  # the longest a test waits for the server to cut a slow client


# --------------------------------------------------------------------------- raw client


def connect(port, source=None, timeout=30):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


class Conn:
    """A raw connection that reads responses (status, headers, body) in order."""

    def __init__(self, port, source=None, timeout=30):
        self.sock = connect(port, source, timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def response(self, head_only=False):
        """The next response: (status, {lowercase name: value}, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, f"{name} sent twice"
            headers[name.lower()] = value.strip()
        status = int(status)
        n = 0 if head_only or status in (204, 304) or status < 200 else \
            int(headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self):
        """True once the server closed the connection (nothing more came)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buf
                self.buf += chunk
        except ConnectionResetError:
            return not self.buf

    def pending(self):
        """Without waiting: True if the server sent something (kept for response()) or
        closed the connection since the last read."""
        self.sock.setblocking(False)
        try:
            chunk = self.sock.recv(65536)
            self.buf += chunk
            return True
        except BlockingIOError:
            return bool(self.buf)
        finally:
            self.sock.setblocking(True)

    def close(self):
        self.sock.close()


def port_of(url):
    return urlsplit(url).port


def problem(status, headers, body, want, detail=None):
    assert status == want, (status, body[:300])
    assert headers["content-type"].startswith("application/problem+json"), headers
    doc = json.loads(body)
    assert doc["status"] == want
    if detail:
        assert detail in doc["detail"], doc["detail"]
    return doc


def s3_error(status, headers, body, want, code=None, message=None):
    assert status == want, (status, body[:300])
    assert headers["content-type"] == "application/xml", headers
    if code:
        assert f"<Code>{code}</Code>".encode() in body, body
    if message:
        assert message.encode() in body, body


def head(method, path, host, *lines):
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{h}\r\n" for h in lines)
            + "\r\n").encode()


# --------------------------------------------------------------------------- smuggling


# framing that two readers could take differently: refused, whatever the listener
SMUGGLING_FRAMES = {
    "two different Content-Length": ("Content-Length: 2", "Content-Length: {n}"),
    "two identical Content-Length": ("Content-Length: {n}", "Content-Length: {n}"),
    "a Content-Length list": ("Content-Length: 2, {n}",),
    "Content-Length and chunked": ("Content-Length: 2", "Transfer-Encoding: chunked"),
    "chunked and Content-Length": ("Transfer-Encoding: chunked", "Content-Length: {n}"),
    "gzip, chunked": ("Transfer-Encoding: gzip, chunked",),
    "two Transfer-Encoding": ("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
    "Transfer-Encoding identity": ("Transfer-Encoding: identity", "Content-Length: {n}"),
}


def smuggle(port, first_head, frames, inner):
    """Sends first_head with frames around a body that is a whole second request."""
    body = b"{}" + inner
    lines = [f.format(n=len(body)) for f in frames]
    conn = Conn(port)
    conn.send(first_head.replace(b"\r\n\r\n", b"\r\n" + "\r\n".join(lines).encode()
                                 + b"\r\n\r\n") + body)
    return conn


@pytest.mark.parametrize("frame", SMUGGLING_FRAMES)
def test_rest_refuses_ambiguous_framing_and_the_smuggled_request_never_runs(api, editor, frame):
    asset = create_asset(api, editor.token, 10, title="before")
    host = urlsplit(api.base_url).netloc
    patch = json.dumps({"title": "smuggled"}).encode()
    inner = head("PATCH", f"/api/v1/assets/{asset['assetId']}", host,
                 f"Authorization: Bearer {editor.token}", "Content-Type: application/json",
                 f"Content-Length: {len(patch)}") + patch
    first = head("POST", "/api/v1/assets", host, f"Authorization: Bearer {editor.token}",
                 "Content-Type: application/json")
    conn = smuggle(port_of(api.base_url), first, SMUGGLING_FRAMES[frame], inner)
    problem(*conn.response(), 400)
    assert conn.closed(), "the connection stays open after a framing error"
    conn.close()
    r = api("GET", f"/api/v1/assets/{asset['assetId']}", editor.token)
    assert r.json()["title"] == "before", "the smuggled PATCH ran"
    # the same request sent on its own does run: the check above can fail
    conn = Conn(port_of(api.base_url))
    conn.send(inner)
    assert conn.response()[0] == 200
    assert api("GET", f"/api/v1/assets/{asset['assetId']}", editor.token).json()["title"] == \
        "smuggled"


@pytest.mark.parametrize("frame", SMUGGLING_FRAMES)
def test_s3_refuses_ambiguous_framing_and_the_smuggled_request_never_runs(api, editor, frame):
    s3 = api.s3(editor)
    victim = f"tests/smuggled-{secrets.token_hex(6)}.bin"
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": "archive",
                                                                    "Key": victim}))
    inner = head("PUT", f"{url.path}?{url.query}", url.netloc, "Content-Length: 8") + b"smuggled"
    first = head("PUT", f"/archive/tests/first-{secrets.token_hex(6)}.bin", url.netloc)
    conn = smuggle(port_of(api.s3_url), first, SMUGGLING_FRAMES[frame], inner)
    s3_error(*conn.response(), 400)
    assert conn.closed(), "the connection stays open after a framing error"
    conn.close()
    with pytest.raises(Exception):
        s3.head_object(Bucket="archive", Key=victim)
    conn = Conn(port_of(api.s3_url))
    conn.send(inner)
    assert conn.response()[0] == 200
    assert s3.get_object(Bucket="archive", Key=victim)["Body"].read() == b"smuggled"


@pytest.mark.parametrize("lines, detail", [
    (("Host : x",), "whitespace between the header name Host and its colon"),
    (("Host: x", "X-A: 1", " folded"), "obsolete line folding"),
    (("X-A: 1",), "needs a Host header"),
    (("Host: a", "Host: b"), "2 Host headers"),
    (("Host: x", "X-A: a\x01b"), "contains the byte \\x01"),
])
def test_malformed_heads_are_400_and_close(api, lines, detail):
    conn = Conn(port_of(api.base_url))
    conn.send(("GET /healthz HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in lines)
               + "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    problem(*conn.response(), 400, detail)
    assert conn.closed()


@pytest.mark.parametrize("line, status, detail", [
    ("GET /healthz HTTP/2.0", 505, "HTTP/2.0 is not supported"),
    ("GET /healthz HTTP/1.1 extra", 400, "HTTP version"),
    ("GET /a b HTTP/1.1", 400, "HTTP version"),
    ("GET healthz HTTP/1.1", 400, "starting with '/'"),
])
def test_malformed_request_lines(api, line, status, detail):
    conn = Conn(port_of(api.base_url))
    conn.send(f"{line}\r\nHost: x\r\n\r\n".encode())
    problem(*conn.response(), status, detail)
    assert conn.closed()


def test_s3_answers_framing_errors_in_xml(api):
    conn = Conn(port_of(api.s3_url))
    conn.send(b"GET /archive HTTP/1.1\r\nHost: x\r\nHost : y\r\n\r\n")
    s3_error(*conn.response(), 400, "InvalidArgument", "whitespace between the header name")
    assert conn.closed()


# --------------------------------------------------------------------------- chunked bodies


def chunked_post(api, editor, body, host=None, half_close=False):
    conn = Conn(port_of(api.base_url))
    conn.send(head("POST", "/api/v1/assets", host or urlsplit(api.base_url).netloc,
                   f"Authorization: Bearer {editor.token}", "Content-Type: application/json",
                   "Transfer-Encoding: chunked") + body)
    if half_close:
        conn.sock.shutdown(socket.SHUT_WR)
    return conn


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def create_body(title="chunked"):
    return json.dumps({"filename": "c.mp4", "size": 10, "mime_type": "video/mp4",
                       "title": title}).encode()


def test_a_valid_chunked_body_is_taken(api, editor):
    data = create_body()
    body = chunk(data[:7]) + b"3;ext=1\r\n" + data[7:10] + b"\r\n" + chunk(data[10:]) \
        + b"0\r\nX-Trailer: ignored\r\n\r\n"
    conn = chunked_post(api, editor, body)
    status, _, out = conn.response()
    assert status == 201, out
    # the connection goes on
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.response()[0] == 200


MALFORMED_CHUNKED = {
    "size over 63 bits": (b"ffffffffffffffff\r\n" + b"x" * 64, "overflows"),
    "bad size characters": (b"zz\r\nhello\r\n0\r\n\r\n", "not a hex digit"),
    "size with 0x": (b"0x5\r\nhello\r\n0\r\n\r\n", "not a hex digit"),
    "no CRLF after the data": (b"5\r\nhelloXX0\r\n\r\n", "not followed by CRLF"),
    "bare LF after the size": (b"5\nhello\r\n0\r\n\r\n", "not a hex digit"),
    "chunk extension abuse": (b"5;" + b"e" * 20000 + b"\r\nhello\r\n0\r\n\r\n",
                              "chunk extensions take over"),
    "oversized trailers": (b"5\r\nhello\r\n0\r\nX-T: " + b"v" * 20000 + b"\r\n\r\n",
                           "trailer section takes over"),
}


@pytest.mark.parametrize("case", MALFORMED_CHUNKED)
def test_malformed_chunked_bodies_are_400_and_close(api, editor, case):
    body, detail = MALFORMED_CHUNKED[case]
    conn = chunked_post(api, editor, body)
    problem(*conn.response(), 400, detail)
    assert conn.closed()


def test_a_chunked_body_cut_by_a_half_close_is_400(api, editor):
    conn = chunked_post(api, editor, b"10\r\nhello", half_close=True)
    problem(*conn.response(), 400, "closed after 5 bytes of a chunked body")
    assert conn.closed()


def test_a_body_shorter_than_its_length_then_half_closed_is_400(api, editor):
    conn = Conn(port_of(api.base_url))
    conn.send(head("POST", "/api/v1/assets", "x", f"Authorization: Bearer {editor.token}",
                   "Content-Type: application/json", "Content-Length: 100") + b'{"file')
    conn.sock.shutdown(socket.SHUT_WR)
    problem(*conn.response(), 400, "closed after 6 of the 100 bytes")
    assert conn.closed()


def test_s3_answers_a_malformed_chunked_body_in_xml(api, editor):
    """CompleteMultipartUpload takes a (chunked) body: a broken one is an S3 error."""
    from conftest import sigv4_headers
    key = f"tests/chunked-{secrets.token_hex(6)}.bin"
    url = f"{api.s3_url}/archive/{key}?uploadId=none"
    signed = sigv4_headers("POST", url, editor, body=b"")
    lines = [f"{k}: {v}" for k, v in signed.items() if k.lower() != "content-length"]
    conn = Conn(port_of(api.s3_url))
    conn.send(head("POST", f"/archive/{key}?uploadId=none", urlsplit(api.s3_url).netloc,
                   *lines, "Transfer-Encoding: chunked") + b"ffffffffffffffff\r\n")
    s3_error(*conn.response(), 400, "InvalidArgument", "overflows")
    assert conn.closed()


# --------------------------------------------------------------------------- keep-alive


def test_keep_alive_serves_requests_one_after_another(api):
    conn = Conn(port_of(api.base_url))
    ids = set()
    for _ in range(3):
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = conn.response()
        assert status == 200 and json.loads(body) == {"status": "ok"}
        assert "connection" not in headers
        ids.add(headers["x-request-id"])
    assert len(ids) == 3
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert conn.closed()


def test_http_1_0_closes_unless_asked_to_keep_alive(api):
    conn = Conn(port_of(api.base_url))
    conn.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = conn.response()
    assert status == 200 and headers["connection"] == "keep-alive"
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, _ = conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert conn.closed()


def test_pipelined_requests_are_answered_in_order(api, viewer):
    conn = Conn(port_of(api.base_url))
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /api/v1/assets?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + viewer.token.encode() + b"\r\n\r\n"
              b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = conn.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = conn.response()
    assert status == 200 and "items" in json.loads(body)
    status, headers, _ = conn.response(head_only=True)
    assert status == 200 and headers["content-length"] == "15"
    status, headers, body = conn.response()
    problem(status, headers, body, 404)
    assert headers["connection"] == "close"
    assert conn.closed()


def test_a_bad_request_in_a_pipeline_ends_it_after_the_good_ones(api):
    conn = Conn(port_of(api.base_url))
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.response()[0] == 200
    problem(*conn.response(), 400, "2 Content-Length headers")
    assert conn.closed()


def test_head_announces_the_length_and_sends_no_body(api, editor):
    from conftest import upload
    data = secrets.token_bytes(300_000)
    asset = upload(api, editor.token, data)
    conn = Conn(port_of(api.base_url))
    path = f"/api/v1/assets/{asset['id']}/download"
    conn.send(head("HEAD", path, "x", f"Authorization: Bearer {editor.token}")
              + head("GET", path, "x", f"Authorization: Bearer {editor.token}", "Range: bytes=0-9"))
    status, headers, _ = conn.response(head_only=True)
    assert status == 200 and headers["content-length"] == str(len(data))
    # had a body followed, this would read it as the next response
    status, headers, body = conn.response()
    assert status == 206 and body == data[:10]


# --------------------------------------------------------------------------- 100-continue


def test_100_continue_is_sent_when_the_body_is_wanted(api, editor):
    body = create_body("continued")
    conn = Conn(port_of(api.base_url))
    conn.send(head("POST", "/api/v1/assets", "x", f"Authorization: Bearer {editor.token}",
                   "Content-Type: application/json", f"Content-Length: {len(body)}",
                   "Expect: 100-continue"))
    status, _, _ = conn.response()
    assert status == 100
    conn.send(body)
    status, _, out = conn.response()
    assert status == 201, out
    assert json.loads(out)["assetId"]


def test_no_100_continue_before_an_early_answer(api):
    body = create_body()
    conn = Conn(port_of(api.base_url))
    conn.send(head("POST", "/api/v1/assets", "x", "Content-Type: application/json",
                   f"Content-Length: {len(body)}", "Expect: 100-continue"))
    status, headers, out = conn.response()
    problem(status, headers, out, 401)
    assert headers["connection"] == "close"  # the body was never read
    assert conn.closed()


def test_an_early_answer_to_a_small_body_keeps_the_connection(api):
    body = create_body()
    conn = Conn(port_of(api.base_url))
    conn.send(head("POST", "/api/v1/assets", "x", "Content-Type: application/json",
                   f"Content-Length: {len(body)}") + body)
    problem(*conn.response(), 401)
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.response()[0] == 200


# --------------------------------------------------------------------------- slow clients


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """A private acervod with short deadlines and small connection limits."""
    from conftest import Server, acervod_path
    if not acervod_path().exists():
        pytest.skip("needs a local acervod")
    srv = Server(tmp_path_factory.mktemp("acervo-tight"), env=TIGHT_ENV).start()
    yield srv
    problems = srv.close()
    assert not problems, f"acervod: {problems}\n{srv.log_tail()}"


def healthz(srv, source=None):
    conn = Conn(srv.port, source)
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = conn.response()[0]
    conn.close()
    return status


@pytest.mark.local
def test_slow_headers_from_one_address_lock_no_one_out(tight):
    """One address opens as many connections as it may and trickles their headers: it is
    refused beyond its share (503, Retry-After), another address is served meanwhile, and
    the trickling connections are cut at the header deadline although bytes keep coming."""
    slow = []
    for _ in range(PER_ADDRESS):
        c = Conn(tight.port, "127.0.0.2")
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(c)
    extra = Conn(tight.port, "127.0.0.2")
    extra.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = extra.response()
    problem(status, headers, body, 503, "your address holds as many connections")
    assert int(headers["retry-after"]) > 0
    assert extra.closed()

    assert healthz(tight) == 200  # another address is served while they hold theirs
    assert not any(c.pending() for c in slow), "a slow client was cut before others ran"

    trickled = 0
    deadline = time.monotonic() + CUT_TIMEOUT
    open_ = list(slow)
    while open_ and time.monotonic() < deadline:
        for c in list(open_):
            if c.pending():
                open_.remove(c)
                continue
            try:
                c.send(b"a")
                trickled += 1
            except OSError:
                open_.remove(c)
        time.sleep(0.25)
    assert not open_, f"{len(open_)} trickling connections were never cut"
    assert trickled > len(slow), "the clients did not keep trickling"
    for c in slow:
        problem(*c.response(), 408, "did not arrive within 8 s")
        assert c.closed()
        c.close()
    # their slots are free again once the server has seen them go
    wait_until(lambda: healthz(tight, "127.0.0.2") == 200, 30, interval=0.2,
               what="the slow clients' slots to be free")


@pytest.mark.local
def test_a_trickled_body_is_cut_with_408(tight):
    token = tight.admin_token
    conn = Conn(tight.port)
    conn.send(head("POST", "/api/v1/assets", "x", f"Authorization: Bearer {token}",
                   "Content-Type: application/json", "Content-Length: 100000"))
    sent = 0
    deadline = time.monotonic() + CUT_TIMEOUT
    while not conn.pending() and time.monotonic() < deadline:
        try:
            conn.send(b"          ")
            sent += 10
        except OSError:
            break
        time.sleep(0.2)
    assert sent < 100000
    status, headers, body = conn.response()
    problem(status, headers, body, 408, "the request body came too slowly")
    assert headers["connection"] == "close"
    assert conn.closed()


@pytest.mark.local
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_that_stops_coming_is_cut_with_408(tight, chunked):
    token = tight.admin_token
    conn = Conn(tight.port, timeout=CUT_TIMEOUT)
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 1000"
    conn.send(head("POST", "/api/v1/assets", "x", f"Authorization: Bearer {token}",
                   "Content-Type: application/json", framing)
              + (b"400\r\n{\"filename\"" if chunked else b"{\"filename\""))
    problem(*conn.response(), 408, "the request body came too slowly")
    assert conn.closed()


@pytest.mark.local
def test_a_body_at_a_real_rate_is_never_cut(tight):
    """Well over the grace, but above the minimum rate: taken whole."""
    token = tight.admin_token
    body = json.dumps({"filename": "slow.mp4", "size": 10, "mime_type": "video/mp4",
                       "description": "d" * 5000}).encode() + b" " * 60000
    conn = Conn(tight.port)
    conn.send(head("POST", "/api/v1/assets", "x", f"Authorization: Bearer {token}",
                   "Content-Type: application/json", f"Content-Length: {len(body)}"))
    start = time.monotonic()
    step = 2000  # 2 KB every 0.1 s: about 20 KB/s against a minimum of 1 KB/s
    for i in range(0, len(body), step):
        assert not conn.pending(), "answered before the body was sent"
        conn.send(body[i:i + step])
        time.sleep(0.1)
    status, _, out = conn.response()
    assert status == 201, out
    assert time.monotonic() - start > 2  # it did outlast the grace


@pytest.mark.local
def test_an_idle_keep_alive_connection_is_closed(tight):
    conn = Conn(tight.port, timeout=CUT_TIMEOUT)
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.response()[0] == 200
    assert conn.closed()  # no answer, just the end of the connection


@pytest.mark.local
def test_a_connection_that_sends_nothing_is_closed_without_an_answer(tight):
    conn = Conn(tight.port, timeout=CUT_TIMEOUT)
    assert conn.closed()


@pytest.mark.local
def test_a_client_that_stops_reading_is_cut(tight):
    """A download whose client reads nothing more is ended once no byte could be written
    for idle_timeout: its thread and slot do not wait forever."""
    from conftest import Api
    key = Api(tight.base_url, tight.s3_url).make_key(tight.admin_token, "editor")
    s3 = Api(tight.base_url, tight.s3_url).s3(key)
    name = f"tests/unread-{secrets.token_hex(6)}.bin"
    size = 64 << 20
    s3.put_object(Bucket="archive", Key=name, Body=secrets.token_bytes(size))
    url = urlsplit(s3.generate_presigned_url("get_object",
                                             Params={"Bucket": "archive", "Key": name}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", tight.s3_port))
    sock.sendall(head("GET", f"{url.path}?{url.query}", url.netloc))
    first = sock.recv(1024)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    line = f"GET /archive/{name}?(signed) 200 cut short (the client stopped reading)"
    wait_until(lambda: line in tight.log_text(), CUT_TIMEOUT, interval=0.2,
               what="the server to give up on the client")
    got = len(first)
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert got < size, "the whole object came although the server gave up"


@pytest.mark.local
def test_connection_limits_per_address_and_in_total(fresh_server):
    """16 a address, 48 in all, the last 6 for addresses holding fewer than 2: every
    connection sends a whole request and keeps its slot (keep-alive) while the next comes."""
    srv = fresh_server(env={"ACERVO_MAX_CONNECTIONS": "48",
                            "ACERVO_MAX_CONNECTIONS_PER_ADDRESS": "16",
                            "ACERVO_IDLE_TIMEOUT": "10m", "ACERVO_HEADER_TIMEOUT": "10m"})
    held = []

    def open_from(source):
        c = Conn(srv.port, source)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = c.response()
        if status == 200:
            held.append(c)
        else:
            assert c.closed()
        return status, headers, body

    for source in ("127.0.0.2", "127.0.0.3"):
        for _ in range(16):
            assert open_from(source)[0] == 200
        status, headers, body = open_from(source)
        problem(status, headers, body, 503, "your address holds as many connections")
        assert headers["retry-after"]
    # a third address reaches the reserve before its share
    got = 0
    while True:
        status, headers, body = open_from("127.0.0.4")
        if status != 200:
            break
        got += 1
    assert 0 < got < 16
    problem(status, headers, body, 503, "kept for other addresses")
    # which still admits an address holding nothing, until the listener is full
    assert open_from("127.0.0.1")[0] == 200
    total = len(held)
    for i in range(10, 60):
        status, headers, body = open_from(f"127.0.0.{i}")
        if status != 200:
            break
    problem(status, headers, body, 503, "the server has no free connection")
    assert total < len(held) <= 48
    # every held connection still works, and a freed slot is taken again
    for c in held:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0] == 200
    held.pop().close()
    wait_until(lambda: open_from("127.0.0.99")[0] == 200, 30, interval=0.2,
               what="a freed slot to be taken again")
    for c in held:
        c.close()


@pytest.mark.local
def test_the_s3_listener_refuses_over_its_limit_in_xml(fresh_server):
    srv = fresh_server(env={"ACERVO_MAX_CONNECTIONS_PER_ADDRESS": "2"})
    held = [Conn(srv.s3_port, "127.0.0.2") for _ in range(2)]
    for c in held:
        c.send(b"GET /archive HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0] == 403  # unsigned, but admitted
    extra = Conn(srv.s3_port, "127.0.0.2")
    status, headers, body = extra.response()
    s3_error(status, headers, body, 503, "SlowDown", "your address holds")
    assert headers["retry-after"]
    assert requests.get(srv.base_url + "/healthz", timeout=30).status_code == 200
    for c in held:
        c.close()
