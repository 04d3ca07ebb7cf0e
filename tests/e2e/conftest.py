"""End-to-end fixtures: start the real acervod, make keys, upload assets.

Run with Debian's interpreter:

    ACERVOD=build-test/acervod /usr/bin/python3 -m pytest -q tests/e2e

or against a server that is already running (tests that need a local process are
skipped then):

    /usr/bin/python3 -m pytest -q tests/e2e --base-url http://127.0.0.1:8080 \
        --s3-url http://127.0.0.1:8081 --admin-token TOKEN
"""

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.config
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
PART_SIZE = 5 * MIB
HEALTH_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 120
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")

# Servers started by this session, so a failing test can show their logs.
_live_servers = []


def pytest_addoption(parser):
    group = parser.getgroup("acervo")
    group.addoption("--base-url", default=None,
                    help="REST API of an external acervod (skips the local server fixture)")
    group.addoption("--s3-url", default=None,
                    help="S3 endpoint of the external acervod (with --base-url)")
    group.addoption("--admin-token", default=os.environ.get("ACERVO_ADMIN_TOKEN"),
                    help="admin API token of the external acervod (with --base-url)")


def pytest_configure(config):
    config.addinivalue_line("markers", "local: needs a local acervod process (not --base-url)")
    config.addinivalue_line("markers", "own_env(env): the environment of the test's private acervod")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--base-url"):
        return
    skip = pytest.mark.skip(reason="needs a local acervod; running against --base-url")
    for item in items:
        if "local" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(_live_servers):
            rep.sections.append((f"acervod log tail ({srv.data_dir})", srv.log_tail()))


# --------------------------------------------------------------------------- process


def acervod_path():
    path = Path(os.environ.get("ACERVOD", "build-test/acervod"))
    if not path.is_absolute():
        path = REPO / path
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """The environment for acervod children: no stray ACERVO_/AWS_ settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ACERVO_") and not k.startswith("AWS_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(extra)
    return env


def child_pids(pid):
    """Direct children of pid, read from /proc (never looked up by name)."""
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids.update(int(k) for k in (task / "children").read_text().split())
        except OSError:
            pass
    return kids


def descendant_pids(pid):
    out, pending = set(), [pid]
    while pending:
        for kid in child_pids(pending.pop()):
            if kid not in out:
                out.add(kid)
                pending.append(kid)
    return out


def pid_alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Server:
    """One acervod (supervisor + API process) on a data dir; restartable."""

    def __init__(self, data_dir, admin_token=None, env=None, via_env=False):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.admin_token = admin_token if admin_token is not None else secrets.token_hex(32)
        self.port = free_port()
        self.s3_port = free_port()
        self.extra_env = env or {}
        self.via_env = via_env  # pass data dir and listeners as ACERVO_* instead of flags
        self.proc = None
        self.log_path = self.data_dir / "acervod.log"
        self.exit_codes = []

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def s3_url(self):
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def pid(self):
        return self.proc.pid

    def argv(self):
        if self.via_env:
            return [str(acervod_path())]
        return [str(acervod_path()), "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}",
                "--s3-listen", f"127.0.0.1:{self.s3_port}", "--log-format", "text"]

    def env(self):
        extra = {"ACERVO_PART_SIZE": "5M", "ACERVO_MIN_PART_SIZE": "5M"}
        if self.via_env:
            extra.update(ACERVO_DATA_DIR=str(self.data_dir),
                         ACERVO_LISTEN=f"127.0.0.1:{self.port}",
                         ACERVO_S3_LISTEN=f"127.0.0.1:{self.s3_port}",
                         ACERVO_LOG_FORMAT="text")
        if self.admin_token:
            extra["ACERVO_ADMIN_TOKEN"] = self.admin_token
        extra.update(self.extra_env)
        return clean_env(**extra)

    def start(self):
        if not acervod_path().exists():
            pytest.fail(f"acervod not found at {acervod_path()} (set ACERVOD)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), env=self.env(), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        if self not in _live_servers:
            _live_servers.append(self)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"acervod exited with {self.proc.returncode} during start-up:\n"
                            + self.log_tail())
            try:
                if requests.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"acervod not healthy after {HEALTH_TIMEOUT}s:\n" + self.log_tail())

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM the supervisor, wait, SIGKILL the group after timeout. Returns exit code."""
        if self.proc is None:
            return None
        kids = descendant_pids(self.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._killpg()
            code = self.proc.wait()
        self._reap(kids)
        self.exit_codes.append(code)
        self.proc = None
        return code

    def kill(self):
        """kill -9 the supervisor and every process under it, then wait for all of them."""
        if self.proc is None:
            return
        kids = descendant_pids(self.pid)
        self._killpg()
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._reap(kids)
        self.proc = None

    def _killpg(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @staticmethod
    def _reap(pids):
        wait_until(lambda: not any(pid_alive(p) for p in pids), STOP_TIMEOUT,
                   what=f"acervod children {sorted(pids)} to exit")

    def restart(self):
        if self.proc is not None:
            self.stop()
        return self.start()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def sanitizer_reports(self):
        text = self.log_text()
        return [m for m in SANITIZER_MARKS if m in text]

    def close(self):
        """Stop and check: a clean exit (0) and no sanitizer report in the log."""
        code = self.stop()
        if self in _live_servers:
            _live_servers.remove(self)
        problems = []
        if code not in (0, None):
            problems.append(f"exit code {code} after SIGTERM")
        reports = self.sanitizer_reports()
        if reports:
            problems.append(f"sanitizer reports {reports}")
        return problems


# --------------------------------------------------------------------------- clients


@dataclass
class Key:
    token: str
    s3_access_key: str
    s3_secret_key: str
    role: str
    key_id: str = ""


class Api:
    """Calls the REST API: api(method, path, token, **requests_kwargs)."""

    def __init__(self, base_url, s3_url):
        self.base_url = base_url.rstrip("/")
        self.s3_url = s3_url.rstrip("/") if s3_url else None

    def __call__(self, method, path, token=None, **kw):
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.base_url + path, headers=headers, **kw)

    def make_key(self, admin_token, role, name=None):
        r = self("POST", "/api/v1/keys", admin_token,
                 json={"role": role, "name": name or f"e2e-{role}-{secrets.token_hex(3)}"})
        assert r.status_code == 201, r.text
        body = r.json()
        return Key(body["token"], body["s3_access_key"], body["s3_secret_key"], body["role"],
                   body["key_id"])

    def s3(self, key, **config):
        return s3_client(self.s3_url, key.s3_access_key, key.s3_secret_key, **config)


def s3_client(endpoint, access_key, secret_key, **config):
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                 retries={"max_attempts": 1, "mode": "standard"}, **config)
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1", config=cfg)


# --------------------------------------------------------------------------- upload flow


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def md5(data):
    return hashlib.md5(data).hexdigest()


def error_code(excinfo):
    """The S3 error code of a botocore ClientError caught by pytest.raises."""
    return excinfo.value.response["Error"]["Code"]


def http_status(excinfo):
    """The HTTP status of a botocore ClientError caught by pytest.raises."""
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def random_bytes(size):
    return os.urandom(size)


def create_asset(api, token, data_or_size, filename="file.mp4", mime_type="video/mp4",
                 **fields):
    """POST /api/v1/assets; returns the 201 body."""
    size = data_or_size if isinstance(data_or_size, int) else len(data_or_size)
    body = {"filename": filename, "size": size, "mime_type": mime_type, **fields}
    r = api("POST", "/api/v1/assets", token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def part_bytes(data, part_number, part_size):
    return data[(part_number - 1) * part_size:part_number * part_size]


def put_part(url, data):
    """PUT one part to its presigned URL; returns the ETag as sent by the server."""
    r = requests.put(url, data=data, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, f"part upload: {r.status_code} {r.text}"
    assert r.headers.get("ETag"), "part upload answered without an ETag"
    return r.headers["ETag"]


def put_parts(created, data, only=None):
    """Uploads every part (or the part numbers in only); returns [{partNumber, etag}]."""
    out = []
    for part in created["parts"]:
        n = part["partNumber"]
        if only is not None and n not in only:
            continue
        out.append({"partNumber": n,
                    "etag": put_part(part["url"], part_bytes(data, n, created["partSize"]))})
    return out


def complete(api, token, asset_id, parts):
    return api("POST", f"/api/v1/assets/{asset_id}/complete", token, json={"parts": parts})


def wait_master(api, token, asset_id, timeout=60):
    """The asset once its ingest recorded the master (or failed before that): complete
    answers 202 at once and the ingest workflow assembles, hashes and stores the master."""
    def recorded():
        a = get_asset(api, token, asset_id)
        return a if a["content_hash"] or a["status"] == "failed" else None
    return wait_until(recorded, timeout, interval=0.01, what=f"the master of {asset_id}")


def wait_ingest(api, token, asset_id, timeout=60):
    """The asset once its ingest ended: the asset ready or failed, and its ingest workflow
    ended too (the engine ends the workflow after the step that made the asset ready, so
    on a busy machine the asset can be ready while its workflow still runs)."""
    def ended():
        a = get_asset(api, token, asset_id)
        if a["status"] not in ("ready", "failed"):
            return None
        r = api("GET", "/api/v1/workflows", token, params={"asset_id": asset_id})
        assert r.status_code == 200, r.text
        if any(w["type"] == "ingest" and w["status"] in ("running", "cancelling")
               for w in r.json()["items"]):
            return None
        return a
    return wait_until(ended, timeout, interval=0.02, what=f"the ingest of {asset_id}")


def upload(api, token, data, filename="file.mp4", mime_type="video/mp4", wait=True, **fields):
    """The whole client flow: create, PUT every part, complete. Returns the asset once its
    master is recorded (wait), or the 202 body."""
    created = create_asset(api, token, data, filename, mime_type, **fields)
    parts = put_parts(created, data)
    r = complete(api, token, created["assetId"], parts)
    assert r.status_code == 202, r.text
    return wait_master(api, token, created["assetId"]) if wait else r.json()


def direct_upload(api, token, data, filename="direct.jpg", mime_type="image/jpeg",
                  title=None, wait=True):
    params = {"filename": filename, "mime_type": mime_type}
    if title is not None:
        params["title"] = title
    r = api("POST", "/api/v1/assets/direct", token, params=params, data=data)
    assert r.status_code == 202, r.text
    return wait_master(api, token, r.json()["id"]) if wait else r.json()


def get_asset(api, token, asset_id):
    r = api("GET", f"/api/v1/assets/{asset_id}", token)
    assert r.status_code == 200, r.text
    return r.json()


def assert_problem(r, status, detail_prefix=None):
    """r is an RFC 9457 problem with this status (and detail starting with detail_prefix)."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/problem+json"), f"Content-Type {ctype!r}"
    body = r.json()
    for field in ("type", "title", "status", "detail", "instance", "request_id"):
        assert field in body, f"problem without {field!r}: {body}"
    assert body["status"] == status
    if detail_prefix is not None:
        assert body["detail"].startswith(detail_prefix), body["detail"]
    return body


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    """The shared acervod for non-destructive tests (None with --base-url)."""
    if request.config.getoption("--base-url"):
        yield None
        return
    srv = Server(tmp_path_factory.mktemp("acervo-shared")).start()
    yield srv
    problems = srv.close()
    assert not problems, f"shared acervod: {problems}\n{srv.log_tail()}"


@pytest.fixture(scope="session")
def api(request, server):
    if server is None:
        base = request.config.getoption("--base-url")
        s3 = request.config.getoption("--s3-url")
        if not s3:
            pytest.exit("--base-url needs --s3-url", returncode=4)
        return Api(base, s3)
    return Api(server.base_url, server.s3_url)


@pytest.fixture(scope="session")
def admin_token(request, server):
    if server is None:
        token = request.config.getoption("--admin-token")
        if not token:
            pytest.exit("--base-url needs --admin-token (or ACERVO_ADMIN_TOKEN)", returncode=4)
        return token
    return server.admin_token


@pytest.fixture(scope="session")
def admin(api, admin_token):
    """A second admin key (so S3 credentials of an admin are at hand too)."""
    return api.make_key(admin_token, "admin")


@pytest.fixture(scope="session")
def editor(api, admin_token):
    return api.make_key(admin_token, "editor")


@pytest.fixture(scope="session")
def viewer(api, admin_token):
    return api.make_key(admin_token, "viewer")


@pytest.fixture
def fresh_server(tmp_path):
    """A private acervod per test, for destructive tests (kill -9, fsck, restarts).

    Yields a factory make(start=True, admin_token=, env=, via_env=) -> Server; every
    server made is stopped and checked at teardown.
    """
    made = []

    def make(start=True, **kw):
        srv = Server(tmp_path / f"data{len(made)}", **kw)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    problems = []
    for srv in made:
        problems += srv.close()
    assert not problems, f"acervod: {problems}\n" + "\n".join(s.log_tail() for s in made)


def run_acervod(*args, env=None, timeout=60, check=None):
    """Runs the acervod binary with args (e.g. keys create, fsck); returns CompletedProcess."""
    proc = subprocess.run([str(acervod_path()), *map(str, args)], env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check is not None:
        assert proc.returncode == check, (f"acervod {' '.join(map(str, args))} exited "
                                          f"{proc.returncode}\nstdout: {proc.stdout}\n"
                                          f"stderr: {proc.stderr}")
    return proc


# --------------------------------------------------------------------------- raw SigV4


def sigv4_headers(method, url, key, body=b"", headers=None, skew=None):
    """Headers of a SigV4-signed S3 request (botocore's signer), optionally with the
    clock moved by skew (a timedelta). The URL path is signed exactly as given."""
    import datetime
    from unittest import mock

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    auth = S3SigV4Auth(Credentials(key.s3_access_key, key.s3_secret_key), "s3", "us-east-1")
    if skew is None:
        auth.add_auth(req)
    else:
        real = datetime.datetime

        class Skewed(real):
            @classmethod
            def utcnow(cls):
                return real.utcnow() + skew

        with mock.patch("botocore.auth.datetime.datetime", Skewed):
            auth.add_auth(req)
    return dict(req.headers.items())


def raw_request(method, url, headers=None, body=b"", timeout=60):
    """Sends a request with http.client, so the path goes out byte for byte (requests and
    urllib3 would normalise "..")."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()
