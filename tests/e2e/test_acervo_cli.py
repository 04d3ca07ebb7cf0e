"""The acervo command-line client against a real acervod: login and its config file, the
catalog commands (show, ls, search, edit, jobs), and the exit codes of docs/cli.md."""
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import (Api, Server, acervod_path, clean_env, free_port, get_asset, random_bytes,
                      upload, wait_master)

OK, FAILED, USAGE, AUTH, NOTFOUND, NETWORK, SERVER, REFUSED, LOCAL = range(9)


def cli_path():
    path = Path(os.environ.get("ACERVO_CLI", acervod_path().parent / "acervo"))
    if not path.exists():
        pytest.fail(f"acervo not found at {path} (set ACERVO_CLI)")
    return path


class Cli:
    """Runs acervo with its own HOME (so its own config file)."""

    def __init__(self, home):
        self.home = Path(home)
        self.env = clean_env(HOME=str(self.home))
        for k in ("XDG_CONFIG_HOME", "ACERVO_SERVER", "ACERVO_KEY"):
            self.env.pop(k, None)

    def __call__(self, *args, stdin=None, check=None, timeout=60, cwd=None):
        p = subprocess.run([str(cli_path()), *args], input=stdin, capture_output=True,
                           text=True, env=self.env, timeout=timeout, cwd=cwd)
        if check is not None:
            assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
        return p

    def json(self, *args):
        p = self("--json", *args, check=OK)
        return json.loads(p.stdout)

    @property
    def config(self):
        return self.home / ".config" / "acervo" / "config"


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path)


@pytest.fixture
def logged(cli, api, editor):
    cli("login", api.base_url, "--key", editor.token, check=OK)
    return cli


def test_login_keeps_server_and_key_private(cli, api, editor):
    p = cli("login", api.base_url + "/", "--key", editor.token, check=OK)
    assert "logged in to " + api.base_url in p.stdout and "(editor)" in p.stdout
    mode = cli.config.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(cli.config.parent.stat().st_mode) == 0o700
    text = cli.config.read_text()
    assert f"server = {api.base_url}\n" in text and f"key = {editor.token}\n" in text
    me = cli.json("whoami")
    assert me["role"] == "editor"
    assert "role editor" in cli("whoami", check=OK).stdout


def test_login_reads_the_key_from_stdin(cli, api, viewer):
    cli("login", api.base_url, stdin=viewer.token + "\n", check=OK)
    assert cli.json("whoami")["role"] == "viewer"


def test_wrong_key_is_refused_and_not_kept(cli, api, editor):
    p = cli("login", api.base_url, "--key", "not-a-key", check=AUTH)
    assert p.stderr.startswith("acervo: ") and "does not accept the key" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not cli.config.exists()
    cli("login", api.base_url, "--key", editor.token, check=OK)
    cli.env["ACERVO_KEY"] = "wrong"  # the environment beats the file
    assert "does not accept the key" in cli("whoami", check=AUTH).stderr


def test_not_logged_in_and_server_down(cli):
    p = cli("whoami", check=AUTH)
    assert p.stderr == "acervo: not logged in: run acervo login URL first\n"
    port = free_port()
    p = cli("--server", f"http://127.0.0.1:{port}", "--key", "k", "whoami", check=NETWORK)
    assert f"cannot connect to http://127.0.0.1:{port}: is acervod running there?" in p.stderr
    p = cli("login", f"http://127.0.0.1:{port}", "--key", "k", check=NETWORK)
    assert not cli.config.exists()


def test_usage_errors(logged):
    for args in (["show"], ["show", "not-an-id"], ["ls", "--limit", "0"], ["edit", str(uuid.uuid4())],
                 ["edit", str(uuid.uuid4()), "--meta", "novalue"], ["search"], ["frobnicate"],
                 ["login", "ftp://x", "--key", "k"]):
        p = logged(*args)
        assert p.returncode == USAGE, (args, p.stderr)
        assert p.stderr.startswith("acervo: ") or p.stderr.startswith("usage:"), p.stderr
    assert "exit codes" in logged("--help", check=OK).stdout


def test_show_ls_edit_search_jobs(logged, api, editor):
    m = "cli" + uuid.uuid4().hex[:10]
    data = random_bytes(4096)
    asset = upload(api, editor.token, data, filename=f"{m}.mp4", title=f"{m} pleno del congreso",
                   tags=["parlamento"])
    aid = asset["id"]

    shown = logged("show", aid, check=OK).stdout
    assert f"title        {m} pleno del congreso" in shown and "tags         parlamento" in shown
    j = logged.json("show", aid)
    assert j["id"] == aid and isinstance(j["renditions"], list)
    assert any(line.startswith(aid) for line in logged("ls", "--limit", "1000").stdout.splitlines())
    assert logged.json("ls", "--type", "video", "--limit", "5")["items"]

    # edit: fields, tags replaced, editorial metadata merged; searchable at once
    out = logged("edit", aid, "--title", f"{m} sesión de control", "--tag", "gobierno",
                 "--tag", "congreso", "--meta", "program=Parlamento Hoy", check=OK).stdout
    assert out.startswith(aid)
    a = api("GET", f"/api/v1/assets/{aid}", editor.token).json()
    assert a["title"] == f"{m} sesión de control" and a["tags"] == ["gobierno", "congreso"]
    assert a["editorial_metadata"]["program"] == "Parlamento Hoy"
    res = logged.json("search", f"{m} sesion", "--type", "video")
    assert [h["asset"]["id"] for h in res["hits"]] == [aid]
    text = logged("search", f"{m} control", check=OK).stdout
    assert aid in text and text.rstrip().endswith("1 assets")
    assert logged("search", f"{m} nada", check=OK).stdout.strip() == "0 assets"

    # jobs: the ingest, its steps done
    jobs = logged("jobs", aid, check=OK).stdout
    assert "ingest" in jobs and "completed" in jobs
    wf = logged.json("jobs", aid)
    assert wf[0]["type"] == "ingest" and wf[0]["steps"]


def test_server_errors_become_exit_codes(logged, api, viewer):
    missing = str(uuid.uuid4())
    p = logged("show", missing, check=NOTFOUND)
    assert p.stderr.startswith("acervo: GET /api/v1/assets/") and "not found" in p.stderr
    p = logged("jobs", missing)
    assert p.returncode == OK and "no workflows" in p.stdout
    aid = logged.json("ls", "--limit", "1")["items"][0]["id"]
    p = logged("edit", aid, "--language", "Spanish!", check=REFUSED)
    assert p.stderr == (f"acervo: PATCH /api/v1/assets/{aid}: language 'Spanish!' is not a "
                        "language code like es or en-GB\n")
    p = logged("search", '"unbalanced', check=REFUSED)
    assert "position" in p.stderr or "quote" in p.stderr
    # a viewer may not edit
    logged("login", api.base_url, "--key", viewer.token, check=OK)
    p = logged("edit", aid, "--title", "x", check=AUTH)
    assert "PATCH /api/v1/assets/" in p.stderr


# --------------------------------------------------------------------------- upload


def wait_ready(api, token, aid, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = api("GET", f"/api/v1/assets/{aid}", token).json()
        if a["status"] in ("ready", "failed"):
            return a
        time.sleep(0.1)
    raise AssertionError(f"asset {aid} still {a['status']}")


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            f.write(chunk)
            left -= len(chunk)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def transfers(cli):
    d = cli.home / ".config" / "acervo" / "transfers"
    return sorted(d.iterdir()) if d.exists() else []


def test_upload_files_with_metadata(logged, api, editor, tmp_path):
    a, b = tmp_path / "a.mov", tmp_path / "b.wav"
    ha = make_file(a, 40 << 20)  # 3 parts of 16 MiB
    hb = make_file(b, 1000)
    p = logged("upload", str(a), str(b), "--title", "Pleno", "--tag", "congreso", "--tag",
               "directo", "--meta", "program=Parlamento", "--parallel", "3", check=OK)
    ids = p.stdout.split()
    assert len(ids) == 2 and all(len(i) == 36 for i in ids)
    for aid, h, name in ((ids[0], ha, "a.mov"), (ids[1], hb, "b.wav")):
        asset = wait_ready(api, editor.token, aid)
        assert asset["content_hash"] == h and asset["original_filename"] == name
        assert asset["title"] == "Pleno" and asset["tags"] == ["congreso", "directo"]
        assert asset["editorial_metadata"]["program"] == "Parlamento"
    assert transfers(logged) == []  # nothing left to resume
    assert p.stderr == ""  # no bars in a pipe
    # --json: one object a line
    c = tmp_path / "c.jpg"
    make_file(c, 10)
    line = json.loads(logged("--json", "upload", str(c), check=OK).stdout)
    assert line["file"] == str(c) and line["status"] == "processing"


def test_global_options_go_anywhere_on_the_line(logged, api, editor, tmp_path):
    f = tmp_path / "Pleno del jueves.mp4"
    make_file(f, 1000)
    # after the command, as aws, git and kubectl take them
    line = json.loads(logged("upload", str(f), "--json", check=OK).stdout)
    assert line["file"] == str(f) and line["status"] == "processing"
    # no title: the server names it after the file
    assert get_asset(api, editor.token, line["asset_id"])["title"] == "Pleno del jueves"
    # a command option's value is never taken for a global option
    g = tmp_path / "g.mp4"
    make_file(g, 1001)
    aid = logged("upload", str(g), "--title", "--json", check=OK).stdout.strip()
    assert get_asset(api, editor.token, aid)["title"] == "--json"
    # after "--" everything is a file, even a name that looks like an option
    (tmp_path / "--json").write_bytes(os.urandom(1002))
    aid = logged("upload", "--", "--json", check=OK, cwd=tmp_path).stdout.strip()
    assert get_asset(api, editor.token, aid)["original_filename"] == "--json"
    # --server and --key after the command too
    p = logged("whoami", "--json", "--server", api.base_url, "--key", editor.token, check=OK)
    assert json.loads(p.stdout)["role"] == "editor"
    assert logged("whoami", "--key", "not-a-key", check=AUTH).returncode == AUTH


def test_upload_errors(logged, api, editor, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    p = logged("upload", str(empty), check=REFUSED)
    assert p.stderr.startswith("acervo: POST /api/v1/assets: ") and "size" in p.stderr
    p = logged("upload", str(tmp_path / "missing.mp4"), check=LOCAL)
    assert "cannot read" in p.stderr and "No such file" in p.stderr
    p = logged("upload", str(tmp_path), check=LOCAL)
    assert "is not a regular file" in p.stderr
    ok = tmp_path / "ok.mp4"
    make_file(ok, 100)
    p = logged("upload", str(ok), str(empty), check=FAILED)  # one of two: exit 1
    assert len(p.stdout.split()) == 1 and "1 of 2 files were not uploaded" in p.stderr
    assert logged("upload", check=USAGE).stderr.startswith("acervo: usage: acervo upload")
    logged("upload", str(ok), "--parallel", "0", check=USAGE)
    logged("upload", str(ok), "--limit-rate", "fast", check=USAGE)


def put_lines(srv, aid):
    """The part PUTs the server completed for the asset (from its access log)."""
    out = []
    for line in srv.log_path.read_text(errors="replace").splitlines():
        m = re.search(r"PUT (\S*%s\S*)\?\(signed\) (\d+) in (\d+) bytes" % aid, line)
        if m:
            out.append((int(m.group(2)), int(m.group(3))))
    return out


def test_upload_resumes_after_kill(logged, api, editor, server, tmp_path):
    if server is None:
        pytest.skip("reads the server's log")
    f = tmp_path / "big.mxf"
    size = 300 << 20
    h = make_file(f, size)
    proc = subprocess.Popen([str(cli_path()), "upload", str(f), "--parallel", "2",
                             "--limit-rate", "60M"], env=logged.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        aid = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the asset id is in the state file
            st = transfers(logged)
            if st and st[0].read_text().startswith("acervo-upload 1 "):
                aid = st[0].read_text().split()[2]
                got = api("GET", f"/api/v1/assets/{aid}/upload", editor.token).json()
                if len(got["received"]) >= 5:
                    break
            time.sleep(0.02)
        assert aid, f"no upload state: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = api("GET", f"/api/v1/assets/{aid}/upload", editor.token).json()
    nparts = before["partCount"]
    assert 5 <= len(before["received"]) < nparts
    p = logged("upload", str(f), check=OK)
    assert p.stdout.strip() == aid  # the same asset, continued
    asset = wait_ready(api, editor.token, aid)
    assert asset["content_hash"] == h and asset["file_size_bytes"] == size
    # the server took each part once: a part counts once complete (a cut one is not)
    done = [n for status, n in put_lines(server, aid) if status == 200]
    assert len(done) == nparts and sum(done) == size, done
    assert transfers(logged) == []


def test_upload_interrupted_by_ctrl_c_then_resumed(logged, api, editor, tmp_path):
    f = tmp_path / "ctrlc.mp4"
    h = make_file(f, 64 << 20)
    proc = subprocess.Popen([str(cli_path()), "upload", str(f), "--parallel", "1",
                             "--limit-rate", "20M"], env=logged.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not transfers(logged):
        time.sleep(0.02)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == FAILED and "run the same command again" in err, err
    aid = transfers(logged)[0].read_text().split()[2]
    assert logged("upload", str(f), check=OK).stdout.strip() == aid
    assert wait_ready(api, editor.token, aid)["content_hash"] == h


@pytest.fixture
def own(tmp_path, request):
    """A private acervod (the test stops and starts it; a test's `own_env` mark gives its
    environment) and a client logged in to it: (server, api, editor, cli)."""
    mark = request.node.get_closest_marker("own_env")
    srv = Server(tmp_path / "data", env=mark.args[0] if mark else None).start()
    try:
        api = Api(srv.base_url, srv.s3_url)
        ed = api.make_key(srv.admin_token, "editor")
        cli = Cli(tmp_path / "home")
        cli("login", srv.base_url, "--key", ed.token, check=OK)
        yield srv, api, ed, cli
    finally:
        srv.close()


def upload_through(cli, args, outage):
    """Runs acervo upload args, calls outage(proc) while it runs (the outage ends with the
    server started again), and returns (stdout, stderr) once the upload ends by itself."""
    proc = subprocess.Popen([str(cli_path()), "upload", *args], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        outage(proc)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == OK, err
    return out, err


def test_upload_rides_out_a_server_outage(own, tmp_path):
    """The server goes away mid-upload (every connection refused) and comes back: the
    client retries with backoff and finishes without being run again."""
    srv, api, ed, cli = own
    f = tmp_path / "outage.mp4"
    h = make_file(f, 60 << 20)

    def outage(proc):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # two parts acknowledged, then the outage
            st = transfers(cli)
            if st and len(st[0].read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        srv.kill()
        time.sleep(3)
        assert proc.poll() is None  # still trying
        srv.start()

    out, _ = upload_through(cli, [str(f), "--parallel", "2", "--limit-rate", "15M"], outage)
    asset = wait_ready(api, ed.token, out.strip())
    assert asset["content_hash"] == h
    assert transfers(cli) == []


def test_upload_waits_for_a_server_that_is_down(own, tmp_path):
    """The server is down when the upload starts: the create is tried again with backoff,
    announced on stderr, and goes through once the server is back."""
    srv, api, ed, cli = own
    f = tmp_path / "late.mp4"
    h = make_file(f, 3 << 20)
    srv.kill()

    def outage(proc):
        time.sleep(2)
        assert proc.poll() is None  # still trying
        srv.start()

    out, err = upload_through(cli, [str(f)], outage)
    assert "POST /api/v1/assets: cannot connect to" in err and "trying again in" in err
    asset = wait_ready(api, ed.token, out.strip())
    assert asset["content_hash"] == h
    assert assets_named(api, ed.token, [f.name])[f.name] == [asset["status"]]


@pytest.mark.own_env({"ACERVO_PRESIGN_TTL": "2s"})
def test_upload_outlives_its_part_urls(own, tmp_path):
    """Part URLs valid 2 s, parts that take longer to come round: the server refuses the
    expired ones (403) and the client fetches fresh URLs and goes on."""
    srv, api, ed, cli = own
    f = tmp_path / "slow.mp4"
    h = make_file(f, 12 << 20)  # 3 parts of 5 MiB
    p = cli("upload", str(f), "--parallel", "1", "--limit-rate", "2M", check=OK, timeout=120)
    asset = wait_ready(api, ed.token, p.stdout.strip())
    assert asset["content_hash"] == h
    log = srv.log_path.read_text(errors="replace")
    assert re.search(r"PUT /archive/uploads/\S+ 403 ", log), "no part URL expired"
    assert len(re.findall(r"GET /api/v1/assets/\S+/upload 200 ", log)) >= 1
    assert transfers(cli) == []


class LosingProxy:
    """A proxy in front of acervod's API that loses the answer to the next create: once
    acervod has answered POST /api/v1/assets with 201, it kills the client (SIGKILL) before
    passing the answer on. The client's next run goes through it too (the upload state is
    kept per server)."""

    RELAYED = ("Content-Type", "Location", "ETag", "Idempotent-Replayed")

    def __init__(self, backend):
        self.backend = backend.rstrip("/")
        self.victim = None  # the client's pid, set once it runs
        self.armed = False
        self.creates = []  # (status, Idempotent-Replayed, assetId) of each create
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                fwd = {k: v for k, v in self.headers.items()
                       if k.lower() in ("authorization", "content-type", "idempotency-key")}
                r = requests.request(self.command, proxy.backend + self.path, data=body,
                                     headers=fwd, timeout=60, allow_redirects=False)
                if self.command == "POST" and self.path == "/api/v1/assets":
                    proxy.creates.append((r.status_code, r.headers.get("Idempotent-Replayed"),
                                          r.json().get("assetId") or r.json().get("asset_id")))
                    if proxy.armed and r.status_code == 201:
                        proxy.armed = False
                        deadline = time.monotonic() + 10
                        while proxy.victim is None and time.monotonic() < deadline:
                            time.sleep(0.01)
                        os.kill(proxy.victim, signal.SIGKILL)
                        self.close_connection = True
                        return
                self.send_response(r.status_code)
                for k in LosingProxy.RELAYED:
                    if k in r.headers:
                        self.send_header(k, r.headers[k])
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def lose_next_create(self, cli, *args):
        """Runs acervo args; the answer to its create is lost and it dies there."""
        self.armed, self.victim = True, None
        proc = subprocess.Popen([str(cli_path()), *args], env=cli.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.victim = proc.pid
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
        assert not self.armed

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def losing(api):
    proxy = LosingProxy(api.base_url)
    yield proxy
    proxy.close()


def test_upload_whose_create_answer_was_lost(cli, api, editor, losing, tmp_path):
    """Killed between acervod's answer to the create and the state file recording it: the
    next run sends the create again with the same Idempotency-Key, gets the same asset, and
    no empty asset is left behind."""
    cli("login", losing.url, "--key", editor.token, check=OK)
    f = tmp_path / f"lost-{uuid.uuid4().hex[:8]}.mp4"
    h = make_file(f, 12 << 20)
    losing.lose_next_create(cli, "upload", str(f), "--title", "Perdido")
    [(status, replayed, aid)] = losing.creates
    assert status == 201 and replayed is None
    assert assets_named(api, editor.token, [f.name])[f.name] == ["uploading"]
    [state] = transfers(cli)
    assert state.read_text().startswith("acervo-upload-key 1 acervo-")

    p = cli("upload", str(f), "--title", "Perdido", check=OK)
    assert p.stdout.strip() == aid
    assert losing.creates[1] == (200, "true", aid)
    asset = wait_ready(api, editor.token, aid)
    assert asset["content_hash"] == h and asset["title"] == "Perdido"
    assert assets_named(api, editor.token, [f.name])[f.name] == [asset["status"]]
    assert transfers(cli) == []


def test_upload_rerun_with_other_options_after_a_lost_create(cli, api, editor, losing, tmp_path):
    """The same, but the next run asks for another title: the server refuses the key for
    that request (422) and names the asset it made; the client drops that empty asset and
    creates the one asked for."""
    cli("login", losing.url, "--key", editor.token, check=OK)
    f = tmp_path / f"changed-{uuid.uuid4().hex[:8]}.mp4"
    h = make_file(f, 6 << 20)
    losing.lose_next_create(cli, "upload", str(f), "--title", "Primero")
    first = losing.creates[0][2]
    p = cli("upload", str(f), "--title", "Segundo", check=OK)
    aid = p.stdout.strip()
    assert [c[0] for c in losing.creates] == [201, 422, 201]
    assert losing.creates[1][2] == first and aid != first
    asset = wait_ready(api, editor.token, aid)
    assert asset["content_hash"] == h and asset["title"] == "Segundo"
    assert api("GET", f"/api/v1/assets/{first}", editor.token).status_code == 404
    assert assets_named(api, editor.token, [f.name])[f.name] == [asset["status"]]
    assert transfers(cli) == []


# --------------------------------------------------------------------------- download


def get_lines(srv, path_part):
    """Bytes the server sent for GETs of paths containing path_part (its access log)."""
    out = []
    for line in srv.log_path.read_text(errors="replace").splitlines():
        m = re.search(r"GET (\S*%s\S*) (\d+) in \d+ bytes out (\d+) bytes" % re.escape(path_part),
                      line)
        if m:
            out.append((int(m.group(2)), int(m.group(3))))
    return out


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    """A real 48 MB WAV master (the ingest finds it audio and makes it ready)."""
    path = tmp_path_factory.mktemp("wav") / "entrevista.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", "260",
                    "-c:a", "pcm_s16le", str(path)], check=True)
    return path


def test_download_master_and_its_resume(logged, api, editor, server, wav, tmp_path):
    aid = logged("upload", str(wav), check=OK).stdout.strip()
    asset = wait_ready(api, editor.token, aid)
    assert asset["status"] == "ready", asset
    size = wav.stat().st_size
    out = tmp_path / "got.wav"
    proc = subprocess.Popen([str(cli_path()), "download", aid, "-o", str(out), "--parallel", "1",
                             "--limit-rate", "20M"], env=logged.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state = Path(str(out) + ".part.acervo")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a chunk on disk, then kill -9
        if state.exists() and len(state.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not out.exists() and Path(str(out) + ".part").exists()
    p = logged("download", aid, "-o", str(out), check=OK)
    assert p.stdout.strip() == str(out)
    assert out.read_bytes() == wav.read_bytes()
    assert not state.exists() and not Path(str(out) + ".part").exists()
    if server is not None:
        # ranges the server finished sending, over both runs (the one cut by the kill is
        # logged as ended early): each byte once, so the second run fetched only the rest
        done = [n for status, n in get_lines(server, f"/api/v1/assets/{aid}/download")
                if status == 206]
        assert sum(done) == size and len(done) == -(-size // (16 << 20)), (size, done)
    # into a directory, under the master's name; --json
    d = tmp_path / "dir"
    d.mkdir()
    j = json.loads(logged("--json", "download", aid, "-o", str(d), check=OK).stdout)
    assert j["path"] == str(d / "entrevista.wav") and j["sha256"] == asset["content_hash"]
    assert j["bytes"] == size


def test_download_rendition_and_errors(logged, api, editor, tmp_path):
    img = tmp_path / "portada.png"
    subprocess.run(["/usr/bin/convert", "-size", "640x480", "gradient:red-blue", str(img)],
                   check=True)
    aid = logged("upload", str(img), check=OK).stdout.strip()
    assert wait_ready(api, editor.token, aid)["status"] == "ready"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = api("GET", f"/api/v1/assets/{aid}/renditions", editor.token).json()["items"]
        if any(x["profile"] == "thumbs" and x["status"] == "ready" for x in r):
            break
        time.sleep(0.1)
    out = logged("download", aid, "--rendition", "thumbs", "-o", str(tmp_path), check=OK)
    got = Path(out.stdout.strip())
    assert got.name == f"{aid}_thumbs.webp" and got.read_bytes()[8:12] == b"WEBP"
    p = logged("download", aid, "--rendition", "nope", check=NOTFOUND)
    assert p.stderr == f"acervo: asset {aid} has no rendition nope\n"
    p = logged("download", str(uuid.uuid4()), check=NOTFOUND)
    logged("download", "x", check=USAGE)
    logged("download", check=USAGE)


def test_download_disk_full(logged, api, editor, tmp_path):
    wav = tmp_path / "musica.wav"  # 11.5 MB, for an 8 MB filesystem
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=880:sample_rate=48000", "-ac", "2", "-t", "60",
                    "-c:a", "pcm_s16le", str(wav)], check=True)
    aid = logged("upload", str(wav), check=OK).stdout.strip()
    assert wait_ready(api, editor.token, aid)["status"] == "ready"
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: " + r.stderr.decode(errors="replace"))
    try:
        p = logged("download", aid, "-o", str(small / "x.wav"), check=LOCAL)
        assert p.stderr.startswith(f"acervo: not enough space for {small}/x.wav (")
        assert not (small / "x.wav").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --------------------------------------------------------------------------- watch


def assets_named(api, token, names):
    """The statuses of the server's assets for each original file name."""
    count = {n: [] for n in names}
    cursor = None
    while True:
        q = "/api/v1/assets?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = api("GET", q, token).json()
        for a in page["items"]:
            if a["original_filename"] in count:
                count[a["original_filename"]].append(a["status"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def test_hot_folder(logged, api, editor, tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    m = uuid.uuid4().hex[:8]
    names = [f"{m}_{i:02d}.mp4" for i in range(18)]
    for i, n in enumerate(names):
        make_file(hot / n, (2 << 20) + i * 4096)
    (hot / f"{m}_empty.mp4").write_bytes(b"")  # the server refuses it
    growing = hot / f"{m}_growing.mov"  # still being written when the watcher starts
    stop = threading.Event()

    def write_slowly():
        with open(growing, "wb") as f:
            for _ in range(12):
                f.write(os.urandom(256 << 10))
                f.flush()
                if stop.wait(0.3):
                    return

    writer = threading.Thread(target=write_slowly)
    writer.start()
    argv = [str(cli_path()), "watch", str(hot), "--settle", "2", "--interval", "1",
            "--parallel", "1", "--limit-rate", "8M", "--tag", "hotfolder"]
    first = subprocess.Popen(argv, env=logged.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        uploaded = 0
        deadline = time.monotonic() + 60
        while uploaded < 5 and time.monotonic() < deadline:
            line = first.stdout.readline()
            assert line, first.stderr.read()
            uploaded += line.startswith("uploaded ")
        os.kill(first.pid, signal.SIGKILL)  # midway, the harshest way
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    writer.join()
    after_kill = [(t.name, t.read_text()) for t in transfers(logged)]
    final = hashlib.sha256(growing.read_bytes()).hexdigest()
    p = logged("--json", "watch", str(hot), "--settle", "2", "--once", "--tag", "hotfolder",
               check=OK, timeout=180)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert {e["event"] for e in events} <= {"uploaded", "failed"}, events

    done = sorted(x.name for x in (hot / "done").iterdir())
    assert done == sorted(names + [growing.name])
    failed = sorted(x.name for x in (hot / "failed").iterdir())
    assert failed == [f"{m}_empty.mp4", f"{m}_empty.mp4.error"]
    note = (hot / "failed" / f"{m}_empty.mp4.error").read_text()
    assert note.startswith("POST /api/v1/assets: ") and "size" in note
    assert sorted(x.name for x in hot.iterdir()) == ["done", "failed"]
    # every good file once on the server, the growing one as it ended
    count = assets_named(api, editor.token, names + [growing.name])
    sent = {n: [st for st in v if st != "uploading"] for n, v in count.items()}
    assert all(len(v) == 1 for v in sent.values()), count
    # and nothing else: not even an empty asset from a create whose answer the kill lost
    assert all(len(v) == 1 for v in count.values()), count
    grown = [e for e in events if e["file"] == growing.name]
    if grown:
        a = api("GET", f"/api/v1/assets/{grown[0]['asset_id']}", editor.token).json()
        assert a["content_hash"] == final and a["tags"] == ["hotfolder"]
    assert transfers(logged) == [], ([(t.name, t.read_text()) for t in transfers(logged)], after_kill, p.stdout)


def test_progress_bars_on_a_terminal_only(logged, api, editor, tmp_path):
    f = tmp_path / "tty.mp4"
    make_file(f, 12 << 20)
    cmd = f"{cli_path()} upload {f} --limit-rate 16M"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=logged.env,
                       capture_output=True, timeout=60)  # bytes: \r kept
    assert p.returncode == 0, p.stdout
    out = p.stdout.decode()
    assert "\r" in out and "tty.mp4" in out and "12.0 MiB / 12.0 MiB" in out
    assert "MiB/s" in out and "[" + "#" * 30 + "]" in out
    aid = out.strip().splitlines()[-1].strip()
    wait_master(api, editor.token, aid)  # the upload ends at 202: the ingest stores the master
    back = tmp_path / "back.mp4"
    p = subprocess.run(["script", "-qec", f"{cli_path()} download {aid} -o {back}", "/dev/null"],
                       env=logged.env, capture_output=True, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0 and "\r" in out and "#" * 30 in out, out
    assert back.read_bytes() == f.read_bytes()
    # several files: each its bar, with the total of them all
    g, h = tmp_path / "uno.mp4", tmp_path / "dos.mp4"
    make_file(g, 6 << 20)
    make_file(h, 6 << 20)
    p = subprocess.run(["script", "-qec", f"{cli_path()} upload {g} {h} --limit-rate 16M",
                        "/dev/null"], env=logged.env, capture_output=True, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    assert "(1/2)" in out and "total 12.0 MiB / 12.0 MiB (2/2)" in out, out
