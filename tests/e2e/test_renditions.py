"""Renditions end to end: generated media through the real ingest, every profile probed.

The ingest's renditions step fans out over the profiles of the detected type; each output
is downloaded through the API and probed with ffprobe here, independently of acervo-probe.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import (Api, assert_problem, get_asset, upload, wait_ingest, wait_until)

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
CONVERT = "/usr/bin/convert"
EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"


def run(*argv):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=300)


def ffprobe(path):
    out = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], check=True, capture_output=True, timeout=120).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("rmedia")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", d / "land.mp4")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-t", "2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", d / "silent.mp4")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "sine=frequency=330:sample_rate=44100:duration=2", "-ac", "2", "-c:a", "libmp3lame",
        d / "tone.mp3")
    run(CONVERT, "-size", "1600x1200", "gradient:navy-orange", "-quality", "90", d / "p.jpg")
    run(EXIFTOOL, "-overwrite_original", "-Orientation#=6", d / "p.jpg")
    return d


def ingest(api, token, path, mime):
    a = upload(api, token, Path(path).read_bytes(), filename=Path(path).name, mime_type=mime,
               wait=False)
    return wait_ingest(api, token, a["id"], timeout=240)


def renditions(api, token, asset_id):
    r = api("GET", f"/api/v1/assets/{asset_id}/renditions", token)
    assert r.status_code == 200, r.text
    return {x["profile"]: x for x in r.json()["items"] if not x["on_demand"]}


def fetch(api, token, path, dest):
    r = api("GET", path, token)
    assert r.status_code == 200, r.text[:300]
    dest.write_bytes(r.content)
    return dest


def test_video_gets_every_profile(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "land.mp4", "video/mp4")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert set(rs) == {"proxy", "web_low", "poster", "hls", "waveform"}, rs.keys()
    assert all(r["status"] == "ready" for r in rs.values()), rs
    for name in ("proxy", "web_low"):
        r = rs[name]
        p = ffprobe(fetch(api, editor.token, r["links"]["download"], tmp_path / f"{name}.mp4"))
        v = [s for s in p["streams"] if s["codec_type"] == "video"][0]
        au = [s for s in p["streams"] if s["codec_type"] == "audio"][0]
        assert (v["codec_name"], au["codec_name"]) == ("h264", "aac")
        assert (v["width"], v["height"]) == (640, 360)  # never upscaled
        assert abs(float(p["format"]["duration"]) - 3.0) <= 0.5
        assert (r["width"], r["height"], r["mime_type"]) == (640, 360, "video/mp4")
        assert r["file_size_bytes"] == (tmp_path / f"{name}.mp4").stat().st_size
    poster = ffprobe(fetch(api, editor.token, rs["poster"]["links"]["download"],
                           tmp_path / "poster.jpg"))
    assert poster["streams"][0]["codec_name"] == "mjpeg"
    assert (poster["streams"][0]["width"], poster["streams"][0]["height"]) == (640, 360)
    peaks = api("GET", rs["waveform"]["links"]["download"], editor.token).json()
    assert peaks["peaks"] and all(-1 <= lo <= hi <= 1 for lo, hi in peaks["peaks"])
    # the HLS master plays: ffmpeg reads it and its segments back through the API
    master = rs["hls"]["links"]["download"]
    out = subprocess.run([FFMPEG, "-v", "error", "-headers",
                          f"Authorization: Bearer {editor.token}\r\n", "-i",
                          api.base_url + master, "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    names = {f["name"] for f in rs["hls"]["files"]}
    assert "master.m3u8" in names and any(n.endswith(".mpd") for n in names)
    # range requests on a rendition
    r = api("GET", rs["proxy"]["links"]["download"], editor.token, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100


def test_silent_video_has_no_waveform(api, editor, media):
    a = ingest(api, editor.token, media / "silent.mp4", "video/mp4")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert "waveform" not in rs and rs["proxy"]["status"] == "ready"


def test_audio_profiles(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "tone.mp3", "audio/mpeg")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert set(rs) == {"preview", "broadcast", "waveform"}
    p = ffprobe(fetch(api, editor.token, rs["preview"]["links"]["download"], tmp_path / "p.mp3"))
    assert p["streams"][0]["codec_name"] == "mp3"
    w = ffprobe(fetch(api, editor.token, rs["broadcast"]["links"]["download"], tmp_path / "b.wav"))
    assert (w["streams"][0]["codec_name"], w["streams"][0]["sample_rate"]) == ("pcm_s24le",
                                                                                "48000")
    assert abs(float(w["format"]["duration"]) - 2.0) <= 0.5


def test_image_thumbnails(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "p.jpg", "image/jpeg")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert set(rs) == {"thumbs"}
    files = {f["name"]: f for f in rs["thumbs"]["files"]}
    assert set(files) == {"thumb_300.webp", "thumb_800.webp", "thumb_1200.webp"}
    t = fetch(api, editor.token, files["thumb_300.webp"]["href"], tmp_path / "t.webp")
    assert t.read_bytes()[:4] == b"RIFF" and t.read_bytes()[8:12] == b"WEBP"
    s = ffprobe(t)["streams"][0]
    assert (s["width"], s["height"]) == (225, 300)  # orientation 6: portrait


def test_on_demand_subclip(api, editor, viewer, media, tmp_path):
    a = ingest(api, editor.token, media / "land.mp4", "video/mp4")
    if a["status"] == "failed" and a["duplicate_of"]:
        a = get_asset(api, editor.token, a["duplicate_of"])
    assert a["status"] == "ready"
    assert_problem(api("POST", f"/api/v1/assets/{a['id']}/renditions", viewer.token,
                       json={"profile": "subclip", "clip": {"in_ms": 0, "out_ms": 1000}}), 403)
    assert_problem(api("POST", f"/api/v1/assets/{a['id']}/renditions", editor.token,
                       json={"profile": "subclip"}), 400)
    assert_problem(api("POST", f"/api/v1/assets/{a['id']}/renditions", editor.token,
                       json={"profile": "subclip", "clip": {"in_ms": 500, "out_ms": 99000}}), 400)
    assert_problem(api("POST", f"/api/v1/assets/{a['id']}/renditions", editor.token,
                       json={"profile": "thumbs"}), 400)
    r = api("POST", f"/api/v1/assets/{a['id']}/renditions", editor.token,
            json={"profile": "subclip", "clip": {"in_ms": 500, "out_ms": 2000}})
    assert r.status_code == 202, r.text
    rid, wf = r.json()["id"], r.json()["workflow_id"]
    w = api("GET", f"/api/v1/workflows/{wf}", editor.token).json()
    assert w["type"] == "rendition"

    def ready():
        items = api("GET", f"/api/v1/assets/{a['id']}/renditions", editor.token).json()["items"]
        x = [i for i in items if i["id"] == rid][0]
        return x if x["status"] in ("ready", "failed") else None
    x = wait_until(ready, 120, interval=0.2, what="the subclip")
    assert x["status"] == "ready", x["error"]
    assert x["on_demand"] and x["expires_at"] and x["params"] == {"in_ms": 500, "out_ms": 2000}
    w = api("GET", f"/api/v1/workflows/{wf}", editor.token).json()
    assert w["activities"][0]["queue"] == "transcode-interactive"
    p = ffprobe(fetch(api, editor.token, x["links"]["download"], tmp_path / "sub.mp4"))
    assert abs(float(p["format"]["duration"]) - 1.5) <= 0.5


def test_on_demand_renditions_expire(fresh_server, media):
    srv = fresh_server(env={"ACERVO_ONDEMAND_TTL": "1s", "ACERVO_SWEEP_INTERVAL": "1s"})
    api = Api(srv.base_url, srv.s3_url)
    a = ingest(api, srv.admin_token, media / "tone.mp3", "audio/mpeg")
    assert a["status"] == "ready", a["failure_reason"]
    r = api("POST", f"/api/v1/assets/{a['id']}/renditions", srv.admin_token,
            json={"profile": "preview"})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]

    def state():
        items = api("GET", f"/api/v1/assets/{a['id']}/renditions", srv.admin_token).json()
        return [i for i in items["items"] if i["id"] == rid][0]
    wait_until(lambda: state()["status"] in ("ready", "expired"), 60, interval=0.1,
               what="the on-demand preview")
    wait_until(lambda: state()["status"] == "expired", 10, interval=0.2, what="its expiry")
    assert_problem(api("GET", f"/api/v1/renditions/{rid}/download", srv.admin_token), 410)
    # the standard preview is untouched
    std = renditions(api, srv.admin_token, a["id"])["preview"]
    assert api("GET", std["links"]["download"], srv.admin_token).status_code == 200
