"""Crashes, restarts and fsck: nothing acknowledged is lost, nothing torn is visible."""

import hashlib
import http.client
import json
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (MIB, PART_SIZE, Api, child_pids, complete, create_asset, direct_upload,
                      get_asset, part_bytes, put_parts, random_bytes, run_acervod, sha256,
                      upload, wait_until, wait_master, wait_ingest)

pytestmark = pytest.mark.local


# --------------------------------------------------------------------------- helpers


class Trickle(threading.Thread):
    """PUTs data to a presigned URL slowly (Content-Length up front, then small chunks).

    `progress` is set once `trigger` of the bytes are on the wire; afterwards `status`
    holds the HTTP status, or `error` the exception if the connection died.
    """

    def __init__(self, url, data, chunk=64 * 1024, delay=0.01, trigger=0.5):
        super().__init__(daemon=True)
        self.url, self.data, self.chunk, self.delay = url, data, chunk, delay
        self.trigger = int(len(data) * trigger)
        self.progress = threading.Event()
        self.status = self.error = None
        self.headers = {}

    def run(self):
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
            conn.putheader("Content-Length", str(len(self.data)))
            conn.endheaders()
            for off in range(0, len(self.data), self.chunk):
                conn.send(self.data[off:off + self.chunk])
                if off + self.chunk >= self.trigger:
                    self.progress.set()
                time.sleep(self.delay)
            resp = conn.getresponse()
            self.status, self.headers = resp.status, dict(resp.getheaders())
            resp.read()
        except Exception as e:  # noqa: BLE001 -- the kill is expected to break the socket
            self.error = e
        finally:
            self.progress.set()
            conn.close()


def clients(srv):
    api = Api(srv.base_url, srv.s3_url)
    return api, api.make_key(srv.admin_token, "editor")


def upload_status(api, token, asset_id):
    r = api("GET", f"/api/v1/assets/{asset_id}/upload", token)
    assert r.status_code == 200, r.text
    return r.json()


def md5(data):
    return hashlib.md5(data).hexdigest()


def archive_root(srv):
    return srv.data_dir / "objects" / "archive"


def master_keys(srv):
    """Every object key under archive/masters/ on disk."""
    root = archive_root(srv)
    keys = []
    for dirpath, _, files in os.walk(root / "masters"):
        keys += [str(Path(dirpath, f).relative_to(root)) for f in files]
    return sorted(keys)


def master_path(srv, asset):
    return archive_root(srv) / asset["master_storage_key"]


def fsck(srv):
    proc = run_acervod("fsck", "--data-dir", srv.data_dir, timeout=120)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"fsck printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr}")
    for field in ("checked", "ok", "mismatches", "missing", "orphans"):
        assert field in report, f"fsck report without {field!r}: {report}"
    return proc.returncode, report


def assert_fsck_clean(srv):
    code, report = fsck(srv)
    assert (code, report["mismatches"], report["missing"], report["orphans"]) == \
        (0, [], [], []), report
    assert report["ok"] == report["checked"]
    return report


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def tmp_bytes(srv):
    """Bytes in regular files under the store's scratch area."""
    total = 0
    for dirpath, _, files in os.walk(srv.data_dir / "objects" / ".tmp"):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


# --------------------------------------------------------------------------- restarts


def test_restart_keeps_assets_and_keys(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    data = random_bytes(PART_SIZE + 1000)
    asset = upload(api, editor.token, data)
    assert srv.stop() == 0
    srv.start()
    assert get_asset(api, editor.token, asset["id"])["content_hash"] == sha256(data)
    r = api("GET", f"/api/v1/assets/{asset['id']}/download", editor.token)
    assert sha256(r.content) == sha256(data)


def test_supervisor_restarts_a_killed_api_process(fresh_server):
    srv = fresh_server()
    kids = srv_children(srv)
    assert kids, "acervod has no child process (expected a supervisor and an API process)"
    for kid in kids:
        os.kill(kid, signal.SIGKILL)

    def healthy_again():
        try:
            return requests.get(srv.base_url + "/healthz", timeout=1).status_code == 200 and \
                set(srv_children(srv)) - set(kids)
        except requests.RequestException:
            return False

    wait_until(healthy_again, 20, 0.1, "the supervisor to restart the API process")
    assert srv.proc.poll() is None


def srv_children(srv):
    return sorted(child_pids(srv.pid))


# --------------------------------------------------------------------------- kill -9


def test_kill9_during_part_upload(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    data = random_bytes(3 * PART_SIZE)
    created = create_asset(api, editor.token, data)
    asset_id = created["assetId"]
    put_parts(created, data, only={1})
    slow = Trickle(created["parts"][1]["url"], part_bytes(data, 2, PART_SIZE))
    slow.start()
    assert slow.progress.wait(60)
    srv.kill()
    slow.join(60)
    assert slow.status is None, "the part upload finished before the kill; slow it down"

    srv.start()
    assert tmp_bytes(srv) < MIB, "the torn part was left in the scratch area after restart"
    assert get_asset(api, editor.token, asset_id)["status"] == "uploading"
    status = upload_status(api, editor.token, asset_id)
    received = {p["partNumber"]: p for p in status["received"]}
    assert 1 in received
    for n, p in received.items():  # a listed part is whole, never truncated
        expected = part_bytes(data, n, PART_SIZE)
        assert (p["size"], p["etag"].strip('"')) == (len(expected), md5(expected))
    assert 3 in {p["partNumber"] for p in status["missing"]}

    resumed = put_parts({"parts": status["missing"], "partSize": PART_SIZE}, data)
    parts = sorted(resumed + [{"partNumber": n, "etag": p["etag"]} for n, p in received.items()],
                   key=lambda p: p["partNumber"])
    r = complete(api, editor.token, asset_id, parts)
    assert r.status_code == 202, r.text
    assert wait_master(api, editor.token, asset_id)["content_hash"] == sha256(data)
    d = api("GET", f"/api/v1/assets/{asset_id}/download", editor.token)
    assert sha256(d.content) == sha256(data)


@pytest.mark.parametrize("delay", [0.05, 0.25, 0.45], ids=["50ms", "250ms", "450ms"])
def test_kill9_during_complete(fresh_server, delay):
    srv = fresh_server()
    api, editor = clients(srv)
    data = random_bytes(6 * PART_SIZE)
    created = create_asset(api, editor.token, data)
    asset_id = created["assetId"]
    parts = put_parts(created, data)

    outcome = {}

    def fire():
        try:
            outcome["status"] = complete(api, editor.token, asset_id, parts).status_code
        except requests.RequestException as e:
            outcome["error"] = e

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    time.sleep(delay)
    srv.kill()
    t.join(60)

    srv.start()
    asset = get_asset(api, editor.token, asset_id)
    if asset["status"] == "uploading":
        assert outcome.get("status") != 202, "complete was acknowledged but did not survive"
        r = complete(api, editor.token, asset_id, parts)
        assert r.status_code == 202, r.text
    # complete answers 202 before the ingest records the master: wait for it
    asset = wait_master(api, editor.token, asset_id)
    assert asset["content_hash"] == sha256(data)
    assert sha256(master_path(srv, asset).read_bytes()) == sha256(data)
    assert master_keys(srv) == [asset["master_storage_key"]]
    assert srv.stop() == 0
    assert_fsck_clean(srv)


def test_kill9_during_s3_put_leaves_no_object(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    s3 = api.s3(editor)
    key = "tests/torn.bin"
    data = random_bytes(4 * MIB)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "archive", "Key": key},
                                    ExpiresIn=600)
    slow = Trickle(url, data)
    slow.start()
    assert slow.progress.wait(60)
    srv.kill()
    slow.join(60)
    assert slow.status is None

    srv.start()
    r = requests.head(s3.generate_presigned_url(
        "head_object", Params={"Bucket": "archive", "Key": key}, ExpiresIn=600), timeout=30)
    assert r.status_code == 404
    s3.put_object(Bucket="archive", Key=key, Body=data)
    assert sha256(s3.get_object(Bucket="archive", Key=key)["Body"].read()) == sha256(data)


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_lets_an_inflight_part_upload_finish(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    data = random_bytes(PART_SIZE + 10)
    created = create_asset(api, editor.token, data)
    part = part_bytes(data, 1, PART_SIZE)
    slow = Trickle(created["parts"][0]["url"], part, delay=0.02, trigger=0.25)
    slow.start()
    assert slow.progress.wait(60)
    srv.proc.send_signal(signal.SIGTERM)
    slow.join(120)
    assert slow.error is None, f"in-flight upload broken by SIGTERM: {slow.error!r}"
    assert slow.status == 200
    assert srv.proc.wait(30) == 0
    srv.proc = None

    srv.start()
    status = upload_status(api, editor.token, created["assetId"])
    assert [(p["partNumber"], p["etag"].strip('"')) for p in status["received"]] == \
        [(1, md5(part))]


def test_sigterm_exits_zero(fresh_server):
    srv = fresh_server()
    assert srv.stop() == 0


# --------------------------------------------------------------------------- sweeping


def test_expired_upload_is_swept(fresh_server):
    srv = fresh_server(env={"ACERVO_UPLOAD_TTL": "2s", "ACERVO_SWEEP_INTERVAL": "1s"})
    api, editor = clients(srv)
    data = random_bytes(PART_SIZE + 10)
    created = create_asset(api, editor.token, data)
    put_parts(created, data, only={1})
    path = f"/api/v1/assets/{created['assetId']}"
    wait_until(lambda: api("GET", path, editor.token).status_code == 404, 30, 0.25,
               "the expired upload to be swept")
    multipart = srv.data_dir / "objects" / ".multipart"
    assert not any(multipart.iterdir()), "the swept upload's parts are still on disk"
    audit = api("GET", "/api/v1/audit", srv.admin_token).json()["items"]
    assert "asset.expire" in {i["action"] for i in audit}


def test_idempotency_keys_expire_with_the_upload_ttl(fresh_server):
    srv = fresh_server(env={"ACERVO_UPLOAD_TTL": "2s", "ACERVO_SWEEP_INTERVAL": "1s"})
    api, editor = clients(srv)
    body = {"filename": "keyed.mp4", "size": 1000, "mime_type": "video/mp4"}
    headers = {"Idempotency-Key": '"nightly-ingest-42"'}
    first = api("POST", "/api/v1/assets", editor.token, json=body, headers=headers)
    assert first.status_code == 201, first.text
    first_id = first.json()["assetId"]
    wait_until(lambda: api("GET", f"/api/v1/assets/{first_id}", editor.token).status_code == 404,
               30, 0.25, "the expired upload to be swept")
    # the key went with it: the same request now opens a new upload
    again = api("POST", "/api/v1/assets", editor.token, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["assetId"] != first_id


# --------------------------------------------------------------------------- fsck


@pytest.fixture
def archived(fresh_server):
    """A stopped server whose data dir holds two completed assets."""
    srv = fresh_server()
    api, editor = clients(srv)
    assets = [upload(api, editor.token, random_bytes(PART_SIZE + 333), filename="a.mp4"),
              direct_upload(api, editor.token, random_bytes(200_000), filename="b.jpg",
                            mime_type="image/jpeg")]
    assert srv.stop() == 0
    return srv, assets


def test_fsck_clean_store(archived):
    srv, assets = archived
    report = assert_fsck_clean(srv)
    assert report["checked"] == len(assets)


def test_fsck_finds_a_flipped_byte(archived):
    srv, assets = archived
    victim = assets[0]
    path = master_path(srv, victim)
    flip_byte(path, 12345)
    code, report = fsck(srv)
    assert code == 1
    assert [m["asset_id"] for m in report["mismatches"]] == [victim["id"]]
    mismatch = report["mismatches"][0]
    assert mismatch["key"] == victim["master_storage_key"]
    assert mismatch["expected"] == victim["content_hash"]
    assert mismatch["actual"] == sha256(path.read_bytes())
    assert report["ok"] == len(assets) - 1

    flip_byte(path, 12345)
    assert_fsck_clean(srv)


def test_fsck_finds_a_missing_master(archived, tmp_path):
    srv, assets = archived
    victim = assets[1]
    path = master_path(srv, victim)
    shutil.move(path, tmp_path / "aside")
    code, report = fsck(srv)
    assert code == 1
    assert victim["id"] in json.dumps(report["missing"]) or \
        victim["master_storage_key"] in json.dumps(report["missing"])
    assert report["mismatches"] == []


def test_fsck_finds_an_orphan(archived):
    srv, assets = archived
    source = master_path(srv, assets[1])
    orphan = f"masters/{uuid.uuid4()}/{assets[1]['content_hash']}/original.jpg"
    (archive_root(srv) / orphan).parent.mkdir(parents=True)
    shutil.copy2(source, archive_root(srv) / orphan)  # copy2 keeps the metadata xattr
    # a fresh object may be an ingest's that the catalog records a moment later
    os.utime(archive_root(srv) / orphan, (time.time(), time.time()))
    code, report = fsck(srv)
    assert (code, report["orphans"], report["in_flight"]) == (0, [], 1), report
    # past the grace of an hour nothing in flight explains it
    old = time.time() - 2 * 3600
    os.utime(archive_root(srv) / orphan, (old, old))
    code, report = fsck(srv)
    assert code == 1
    assert report["orphans"] == [orphan]
    assert report["mismatches"] == [] and report["missing"] == []


def test_fsck_during_a_stream_of_uploads_reports_no_orphans(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    stop = threading.Event()
    done, errors = [], []

    def stream():
        while not stop.is_set():
            try:
                done.append(direct_upload(api, editor.token, random_bytes(300_000),
                                          filename="s.jpg", wait=False)["id"])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    reports = []
    try:
        wait_until(lambda: len(done) >= 3 or errors, 60, what="the first uploads")
        for _ in range(6):
            reports.append(fsck(srv))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    for code, report in reports:
        assert report["orphans"] == [] and report["missing"] == [] and \
            report["mismatches"] == [], report
    # the uploads went on meanwhile: the runs saw masters arrive
    assert len(done) > reports[0][1]["checked"]
    for asset_id in done:
        wait_master(api, editor.token, asset_id)
    assert_fsck_clean(srv)


def test_fsck_ignores_uploads_in_progress(fresh_server):
    srv = fresh_server()
    api, editor = clients(srv)
    data = random_bytes(2 * PART_SIZE)
    put_parts(create_asset(api, editor.token, data), data, only={1})
    upload(api, editor.token, random_bytes(1000))
    assert srv.stop() == 0
    assert assert_fsck_clean(srv)["checked"] == 1


def test_sweep_removes_a_master_the_catalog_never_recorded(fresh_server):
    """A complete that committed the master but died before the catalog recorded it leaves
    the asset uploading; when that upload expires, the sweep removes the master too."""
    srv = fresh_server()
    api, editor = clients(srv)
    asset = upload(api, editor.token, random_bytes(PART_SIZE + 99), filename="lost.mp4")
    assert srv.stop() == 0
    master = srv.data_dir / "objects" / "archive" / asset["master_storage_key"]
    assert master.exists()
    # rewind the catalog to "uploading, upload expired", as if the process died between
    # the store commit and the catalog transaction
    sql = (f"UPDATE assets SET status='uploading', content_hash=NULL, master_storage_key=NULL "
           f"WHERE id='{asset['id']}'; "
           f"INSERT INTO uploads VALUES('{asset['id']}', '{'0' * 32}', 'archive', "
           f"'uploads/{asset['id']}/original.mp4', {PART_SIZE}, 2, NULL, 0, 1);")
    # acervod sql: the search index's triggers need acervod's functions
    run_acervod("sql", "--data-dir", srv.data_dir, sql, check=0)
    srv.extra_env.update({"ACERVO_SWEEP_INTERVAL": "1s"})
    srv.start()
    wait_until(lambda: not master.exists(), 30, 0.25, "the unreferenced master to be swept")
    assert api("GET", f"/api/v1/assets/{asset['id']}", editor.token).status_code == 404
    assert srv.stop() == 0
    report = run_acervod("fsck", "--data-dir", srv.data_dir)
    assert report.returncode == 0, report.stdout + report.stderr


def test_complete_racing_abort_never_loses_or_orphans(fresh_server):
    """Complete and abort of the same upload at once: whichever wins, the answers agree with
    what is left (a completed asset is never deleted under a 202) and no master is
    orphaned."""
    srv = fresh_server()
    api, editor = clients(srv)
    outcomes = set()
    for _ in range(25):
        data = random_bytes(3000)
        created = create_asset(api, editor.token, data)
        parts = put_parts(created, data)
        aid = created["assetId"]
        out = {}
        threads = [
            threading.Thread(target=lambda: out.__setitem__(
                "complete", complete(api, editor.token, aid, parts).status_code)),
            threading.Thread(target=lambda: out.__setitem__(
                "abort", api("DELETE", f"/api/v1/assets/{aid}/upload",
                             editor.token).status_code)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = api("GET", f"/api/v1/assets/{aid}", editor.token).status_code
        outcomes.add((out["complete"], out["abort"], after))
        if out["complete"] == 202:
            assert out["abort"] == 409 and after == 200, out
        else:
            assert out["abort"] == 204 and after == 404, out
    assert srv.stop() == 0
    report = run_acervod("fsck", "--data-dir", srv.data_dir)
    assert report.returncode == 0, (outcomes, report.stdout)


def test_head_of_a_huge_master_reads_nothing(fresh_server):
    """HEAD announces the length without reading or allocating the object."""
    srv = fresh_server()
    api, editor = clients(srv)
    asset = upload(api, editor.token, random_bytes(PART_SIZE + 5), filename="big.mp4")
    assert srv.stop() == 0
    master = srv.data_dir / "objects" / "archive" / asset["master_storage_key"]
    huge = 1 << 40  # 1 TiB, sparse: far more than this machine's memory
    os.truncate(master, huge)
    srv.start()
    path = f"/api/v1/assets/{asset['id']}/download"
    r = api("HEAD", path, editor.token)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == huge
    r = api("HEAD", path, editor.token, headers={"Range": f"bytes=0-{huge - 2}"})
    assert r.status_code == 206
    assert api("GET", "/healthz", None).status_code == 200
