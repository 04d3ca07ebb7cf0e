"""What operators see and rely on: private files whatever the umask, process names in ps,
the supervisor's restart backoff, media children that die by a signal, uploads cut off by
a crash of the API process."""

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import (Api, child_pids, direct_upload, pid_alive, random_bytes, run_acervod,
                      upload, wait_ingest, wait_until)

pytestmark = pytest.mark.local

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
CONVERT = "/usr/bin/convert"


def run(*argv):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=300)


def comm(pid):
    return Path(f"/proc/{pid}/comm").read_text().strip()


def cmdline(pid):
    """The command line as ps shows it (a rewritten title is padded with NULs)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return " ".join(a.decode() for a in raw.split(b"\0") if a)


def named(srv, title):
    """The children of srv's supervisor whose ps title is title."""
    return [p for p in child_pids(srv.pid) if pid_alive(p) and cmdline(p) == title]


# --------------------------------------------------------------------------- permissions


def test_everything_written_is_private_whatever_the_umask(fresh_server, tmp_path):
    run(CONVERT, "-size", "640x480", "gradient:red-blue", tmp_path / "p.jpg")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1", "-c:v", "libx264",
        "-pix_fmt", "yuv420p", "-c:a", "aac", tmp_path / "v.mp4")
    srv = fresh_server(start=False)
    data = srv.data_dir / "data"  # made by acervod itself (the test's log stays outside)
    srv.data_dir = data
    old = os.umask(0)
    try:
        srv.start()
        api = Api(srv.base_url, srv.s3_url)
        tok = srv.admin_token
        image = direct_upload(api, tok, (tmp_path / "p.jpg").read_bytes(), filename="p.jpg",
                              wait=False)
        video = upload(api, tok, (tmp_path / "v.mp4").read_bytes(), filename="v.mp4",
                       wait=False)
        for asset_id in (image["id"], video["id"]):
            assert wait_ingest(api, tok, asset_id, timeout=180)["status"] == "ready"
        # an upload left in progress, an object put over S3, the operator commands
        r = api("POST", "/api/v1/assets", tok,
                json={"filename": "open.mp4", "size": 10 << 20, "mime_type": "video/mp4"})
        assert r.status_code == 201, r.text
        assert requests.put(r.json()["parts"][0]["url"], data=random_bytes(5 << 20),
                            timeout=60).status_code == 200
        key = api.make_key(tok, "editor")
        api.s3(key).put_object(Bucket="delivery", Key="web/x/private.txt", Body=b"x")
        run_acervod("keys", "create", "--data-dir", data, "--role", "viewer", check=0)
        assert run_acervod("fsck", "--data-dir", data).returncode in (0, 1)
        seen = walk_modes(data)
    finally:
        os.umask(old)
    srv.stop()
    seen.update(walk_modes(data))
    assert "catalog.db-wal" in {Path(p).name for p in seen}, sorted(seen)
    assert any("/.multipart/" in p for p in seen), "no upload in progress was seen"
    assert any("/proxies/" in p for p in seen), "no rendition was seen"
    open_to_others = {p: oct(m) for p, m in seen.items() if m & 0o077}
    assert not open_to_others, open_to_others


def walk_modes(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(dirpath, name)
            try:
                out[path] = stat.S_IMODE(os.lstat(path).st_mode)
            except FileNotFoundError:
                pass  # removed while walking (a scratch file)
    out[str(root)] = stat.S_IMODE(os.stat(root).st_mode)
    return out


# --------------------------------------------------------------------------- process names


def test_processes_are_named_for_operators(fresh_server):
    srv = fresh_server(env={"ACERVO_WORKERS": "2"})
    assert cmdline(srv.pid) == "acervod: supervisor"
    assert comm(srv.pid) == "acervod: super"
    wait_until(lambda: len(child_pids(srv.pid)) == 3, 20, what="the api and two workers")
    titles = {cmdline(p): comm(p) for p in child_pids(srv.pid)}
    assert titles == {"acervod: api": "acervod: api", "acervod: worker 0": "acervod: w0",
                      "acervod: worker 1": "acervod: w1"}, titles
    # a restarted process has its name too
    (api_pid,) = named(srv, "acervod: api")
    os.kill(api_pid, signal.SIGKILL)
    wait_until(lambda: [p for p in named(srv, "acervod: api") if p != api_pid], 30,
               what="the api process to come back")


# --------------------------------------------------------------------------- restart backoff


RESTART = re.compile(r"restarting api process 0 in (\d+) ms")


def test_restart_backoff_resets_once_a_process_stays_up(fresh_server):
    srv = fresh_server(env={"ACERVO_RESTART_RESET": "3s"})

    def kill_api():
        (pid,) = wait_until(lambda: named(srv, "acervod: api"), 60, 0.01,
                            what="an api process")
        before = len(RESTART.findall(srv.log_text()))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(RESTART.findall(srv.log_text())) > before, 30,
                   what="the supervisor to schedule a restart")
        wait_until(lambda: [p for p in named(srv, "acervod: api") if p != pid], 60, 0.01,
                   what="the api process to be restarted")

    # crashes one after another: the delay doubles
    for _ in range(3):
        kill_api()
    assert [int(ms) for ms in RESTART.findall(srv.log_text())] == [1000, 2000, 4000]
    # up for the reset time: the next crash starts over at 1 s
    wait_until(lambda: "api process 0 has run 3 s since its restart" in srv.log_text(), 60,
               what="the backoff to reset")
    kill_api()
    assert [int(ms) for ms in RESTART.findall(srv.log_text())] == [1000, 2000, 4000, 1000]
    wait_until(lambda: healthy(srv), 30, what="the api to answer again")


def healthy(srv):
    try:
        return requests.get(srv.base_url + "/healthz", timeout=5).ok
    except requests.RequestException:
        return False


# --------------------------------------------------------------------------- media children


def media_children(srv, name):
    """Live processes named name (acervo-probe, ffmpeg) under srv's process tree."""
    from conftest import descendant_pids
    out = []
    for pid in descendant_pids(srv.pid):
        try:
            if comm(pid) == name and pid_alive(pid):
                out.append(pid)
        except OSError:
            pass
    return out


class Killer:
    """Kills (SIGKILL, by PID) the media children named name of srv as they appear: the
    first `times` of them, or every one (times=None)."""

    def __init__(self, srv, name, times=None):
        import threading
        self.srv, self.name, self.times = srv, name, times
        self.killed = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set() and (self.times is None or len(self.killed) < self.times):
            for pid in media_children(self.srv, self.name):
                if pid in self.killed:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                except ProcessLookupError:
                    pass
                if self.times is not None and len(self.killed) >= self.times:
                    return
            self.stop.wait(0.002)

    def close(self):
        self.stop.set()
        self.thread.join()
        return self.killed


def retries(api, tok, asset_id):
    """The errors of the retries scheduled in the asset's ingest, in order."""
    wf = api("GET", "/api/v1/workflows", tok, params={"asset_id": asset_id}).json()["items"][0]
    wf = api("GET", f"/api/v1/workflows/{wf['id']}", tok).json()
    return [e["detail"]["error"] for e in wf["history"] if e["type"] == "job.retry_scheduled"]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("longv") / "long.mp4"
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "testsrc2=size=1280x720:rate=25,noise=alls=8:allf=t", "-f", "lavfi", "-i",
        "sine=sample_rate=48000", "-t", "12", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", path)
    return path


@pytest.mark.parametrize("child", ["acervo-probe", "ffmpeg"])
def test_a_media_child_killed_once_is_retried_and_the_asset_ends_ready(fresh_server,
                                                                       long_video, child):
    srv = fresh_server()
    api, tok = Api(srv.base_url, srv.s3_url), srv.admin_token
    killer = Killer(srv, child, times=1)
    try:
        a = upload(api, tok, long_video.read_bytes(), filename="long.mp4", wait=False)
        asset = wait_ingest(api, tok, a["id"], timeout=300)
    finally:
        killed = killer.close()
    assert len(killed) == 1, f"no {child} was seen to kill"
    assert asset["status"] == "ready", asset["failure_reason"]
    errors = retries(api, tok, a["id"])
    assert len(errors) == 1 and "was killed by signal 9 (SIGKILL)" in errors[0], errors
    assert errors[0].startswith("the media probe" if child == "acervo-probe" else "ffmpeg making")


def test_a_media_child_that_always_dies_fails_the_asset_after_its_attempts(fresh_server,
                                                                          long_video):
    srv = fresh_server()
    api, tok = Api(srv.base_url, srv.s3_url), srv.admin_token
    killer = Killer(srv, "ffmpeg")
    try:
        a = upload(api, tok, long_video.read_bytes(), filename="long.mp4", wait=False)
        asset = wait_ingest(api, tok, a["id"], timeout=300)
    finally:
        killed = killer.close()
    assert asset["status"] == "failed"
    reason = asset["failure_reason"]
    assert re.fullmatch(r"renditions failed after 5 attempts: ffmpeg making \w+ was killed by "
                        r"signal 9 \(SIGKILL\)", reason), reason
    assert len(killed) >= 5


# --------------------------------------------------------------------------- uploads cut off


def sql(srv, statement):
    return run_acervod("sql", "--data-dir", srv.data_dir, statement, check=0).stdout


def asset_gone(api, tok, asset_id):
    return api("GET", f"/api/v1/assets/{asset_id}", tok).status_code == 404


def test_a_direct_upload_cut_off_by_an_api_crash_is_swept(fresh_server):
    import socket
    srv = fresh_server(env={"ACERVO_SWEEP_INTERVAL": "1s"})
    api, tok = Api(srv.base_url, srv.s3_url), srv.admin_token
    before = {a["id"] for a in api("GET", "/api/v1/assets", tok,
                                   params={"status": "uploading"}).json()["items"]}
    sock = socket.create_connection(("127.0.0.1", srv.port))
    try:
        sock.sendall(b"POST /api/v1/assets/direct?filename=cut.jpg HTTP/1.1\r\n"
                     b"Host: x\r\nAuthorization: Bearer " + tok.encode() + b"\r\n"
                     b"Content-Type: image/jpeg\r\nContent-Length: 4000000\r\n\r\n"
                     + random_bytes(1_000_000))

        def started():
            items = api("GET", "/api/v1/assets", tok,
                        params={"status": "uploading"}).json()["items"]
            return [a["id"] for a in items if a["id"] not in before]
        (asset_id,) = wait_until(started, 30, what="the direct upload to begin")
        (api_pid,) = named(srv, "acervod: api")
        os.kill(api_pid, signal.SIGKILL)
    finally:
        sock.close()
    wait_until(lambda: healthy(srv), 60, what="the api process to come back")
    (upload_id,) = sql(srv, f"SELECT upload_id FROM uploads WHERE asset_id = '{asset_id}'").split()
    staging = srv.data_dir / "objects" / ".multipart" / upload_id
    assert staging.is_dir()
    # nothing finishes it (only its request could): an hour on, the sweep removes it all
    sql(srv, f"UPDATE uploads SET expires_at = expires_at - 3600 * 1000 "
             f"WHERE asset_id = '{asset_id}'")
    wait_until(lambda: asset_gone(api, tok, asset_id) and not staging.exists(), 60,
               what="the sweep to remove the cut-off upload")

    def audited():  # the sweep writes its audit row last
        r = api("GET", "/api/v1/audit", tok, params={"target_id": asset_id})
        return "asset.expire" in [row["action"] for row in r.json()["items"]]
    wait_until(audited, 30, what="the asset.expire audit row")


def test_an_uploading_asset_without_its_upload_is_swept(fresh_server):
    srv = fresh_server(env={"ACERVO_SWEEP_INTERVAL": "1s"})
    api, tok = Api(srv.base_url, srv.s3_url), srv.admin_token
    r = api("POST", "/api/v1/assets", tok,
            json={"filename": "rowless.mp4", "size": 1000, "mime_type": "video/mp4"})
    assert r.status_code == 201, r.text
    asset_id, upload_id = r.json()["assetId"], r.json()["uploadId"]
    staging = srv.data_dir / "objects" / ".multipart" / upload_id
    meta = staging / "meta"
    # the state a crash between the two writes of an earlier version left, two hours ago
    sql(srv, f"DELETE FROM uploads WHERE asset_id = '{asset_id}'; "
             f"UPDATE assets SET created_at = created_at - 7200 * 1000 WHERE id = '{asset_id}'")
    meta.write_text(re.sub(r"initiated=(\d+)", lambda m: f"initiated={int(m[1]) - 7200}",
                           meta.read_text()))
    wait_until(lambda: asset_gone(api, tok, asset_id) and not staging.exists(), 60,
               what="the sweep to remove the asset and its staging data")
    # an upload of a moment ago is left alone
    r = api("POST", "/api/v1/assets", tok,
            json={"filename": "fresh.mp4", "size": 1000, "mime_type": "video/mp4"})
    fresh = r.json()["assetId"]
    time.sleep(3)  # a few sweeps (one a second)
    assert not asset_gone(api, tok, fresh)
