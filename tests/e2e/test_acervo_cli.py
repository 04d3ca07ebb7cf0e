"""The acervo command-line client against a real acervod: login and its config file, the
catalog commands (show, ls, search, edit, jobs), and the exit codes of docs/cli.md."""
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import acervod_path, clean_env, free_port, random_bytes, upload

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

    def __call__(self, *args, stdin=None, check=None, timeout=60):
        p = subprocess.run([str(cli_path()), *args], input=stdin, capture_output=True,
                           text=True, env=self.env, timeout=timeout)
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
