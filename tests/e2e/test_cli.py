"""The acervod command line: --help, --version, keys create, first admin, env config."""

import json
import re

import pytest

from conftest import Api, Key, run_acervod

pytestmark = pytest.mark.local

CONTRACT_FLAGS = ("--data-dir", "--listen", "--s3-listen")


def test_help_lists_every_flag_with_its_env_var():
    proc = run_acervod("--help", check=0)
    out = proc.stdout
    flags = set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", out))
    for flag in CONTRACT_FLAGS:
        assert flag[2:] in flags, f"--help does not list {flag}"
    # --name (keys create) and --batch (import) belong to their subcommands
    undocumented = [f for f in sorted(flags - {"help", "version", "help-markdown", "name", "batch"})
                    if f"ACERVO_{f.upper().replace('-', '_')}" not in out]
    assert not undocumented, f"flags without their ACERVO_ variable in --help: {undocumented}"


def test_operations_guide_lists_the_configuration_table():
    """docs/operations.md carries the table --help-markdown generates from the cfg table."""
    from pathlib import Path
    table = run_acervod("--help-markdown", check=0).stdout.strip().splitlines()
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [row for row in table if row not in guide]
    assert not missing, f"docs/operations.md is out of date (acervod --help-markdown): {missing}"


def test_version_exits_zero():
    proc = run_acervod("--version", check=0)
    assert re.search(r"\d+\.\d+", proc.stdout), proc.stdout


def test_unknown_flag_fails_with_message():
    proc = run_acervod("--no-such-flag", timeout=20)
    assert proc.returncode != 0
    assert "no-such-flag" in proc.stderr


def keys_create(data_dir, role, *extra):
    return run_acervod("keys", "create", "--data-dir", data_dir, "--role", role, *extra)


def parse_single_json(stdout):
    text = stdout.strip()
    obj = json.loads(text)  # fails on anything besides one JSON document
    assert isinstance(obj, dict)
    return obj


def test_keys_create_offline_then_serve(fresh_server, tmp_path):
    srv = fresh_server(start=False)
    proc = keys_create(srv.data_dir, "editor", "--name", "offline")
    assert proc.returncode == 0, proc.stderr
    key = parse_single_json(proc.stdout)
    for field in ("token", "s3_access_key", "s3_secret_key", "role"):
        assert key.get(field), f"keys create output without {field!r}: {key}"
    assert key["role"] == "editor"

    srv.start()
    api = Api(srv.base_url, srv.s3_url)
    me = api("GET", "/api/v1/me", key["token"])
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "editor"
    s3 = api.s3(Key(key["token"], key["s3_access_key"], key["s3_secret_key"], key["role"]))
    s3.put_object(Bucket="archive", Key="tests/offline.bin", Body=b"made offline")
    assert s3.get_object(Bucket="archive", Key="tests/offline.bin")["Body"].read() == \
        b"made offline"


def test_keys_create_while_server_runs(fresh_server):
    srv = fresh_server()
    proc = keys_create(srv.data_dir, "viewer")
    assert proc.returncode == 0, proc.stderr
    key = parse_single_json(proc.stdout)
    me = Api(srv.base_url, srv.s3_url)("GET", "/api/v1/me", key["token"])
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "viewer"


def test_keys_create_bad_role_fails(tmp_path):
    proc = keys_create(tmp_path / "data", "overlord")
    assert proc.returncode != 0
    assert "overlord" in proc.stderr or "role" in proc.stderr
    assert proc.stdout.strip() == ""


def test_keys_create_without_role_fails(tmp_path):
    proc = run_acervod("keys", "create", "--data-dir", tmp_path / "data")
    assert proc.returncode != 0
    assert "role" in proc.stderr
    assert proc.stdout.strip() == ""


def test_keys_are_distinct(tmp_path):
    a = parse_single_json(keys_create(tmp_path / "data", "viewer").stdout)
    b = parse_single_json(keys_create(tmp_path / "data", "viewer").stdout)
    assert a["token"] != b["token"]
    assert a["s3_access_key"] != b["s3_access_key"]
    assert a["s3_secret_key"] != b["s3_secret_key"]


def test_first_start_without_admin_token_logs_a_working_one(fresh_server):
    srv = fresh_server(admin_token="")
    api = Api(srv.base_url, srv.s3_url)
    candidates = set(re.findall(r"\b[0-9a-f]{64}\b", srv.log_text()))
    roles = {t: api("GET", "/api/v1/me", t) for t in candidates}
    admins = [t for t, r in roles.items() if r.status_code == 200 and r.json()["role"] == "admin"]
    assert admins, "no working admin token in the log of the first start"


def test_admin_token_from_env_is_the_first_admin(fresh_server):
    srv = fresh_server()
    api = Api(srv.base_url, srv.s3_url)
    r = api("GET", "/api/v1/me", srv.admin_token)
    assert r.status_code == 200
    assert r.json()["role"] == "admin"
    assert srv.admin_token not in srv.log_text(), "the admin token from the env was logged"


def test_config_from_environment(fresh_server):
    srv = fresh_server(via_env=True)
    api = Api(srv.base_url, srv.s3_url)
    assert api("GET", "/healthz").status_code == 200
    assert (srv.data_dir / "catalog.db").exists() or any(srv.data_dir.iterdir())
    me = api("GET", "/api/v1/me", srv.admin_token)
    assert me.status_code == 200


def test_fsck_on_fresh_data_dir_is_clean(fresh_server):
    srv = fresh_server()
    assert srv.stop() == 0
    proc = run_acervod("fsck", "--data-dir", srv.data_dir)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["checked"] == 0
    assert report["mismatches"] == report["missing"] == report["orphans"] == []


def test_json_logs_are_json_lines_with_request_ids(fresh_server):
    """With the default JSON format every line of the log is one JSON object, the access
    line of a request carries the id the response returned, and no secret is logged."""
    import requests
    srv = fresh_server(via_env=True, env={"ACERVO_LOG_FORMAT": "json"})
    r = requests.get(srv.base_url + "/api/v1/me",
                     headers={"Authorization": f"Bearer {srv.admin_token}"}, timeout=30)
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    assert srv.stop() == 0
    lines = [line for line in srv.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"ts", "level", "pid", "module", "msg"} <= rec.keys() for rec in records)
    access = [rec for rec in records if rec.get("id") == rid]
    assert access and "/api/v1/me" in access[-1]["msg"] and " 200 " in access[-1]["msg"]
    creds = json.loads((srv.data_dir / "admin-credentials.json").read_text())
    log = srv.log_text()
    assert srv.admin_token not in log and creds["s3_secret_key"] not in log
