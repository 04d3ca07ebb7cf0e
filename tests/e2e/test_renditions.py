"""Renditions end to end: generated media through the real ingest, every profile probed.

The ingest's renditions step fans out over the profiles of the detected type; each output
is downloaded through the API and probed with ffprobe here, independently of acervo-probe.
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
import requests

from conftest import (Api, assert_problem, get_asset, pid_alive, upload, wait_ingest,
                      wait_until)

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
    # a phone held upright: stored 1280x720, turned 90 degrees for display
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:v", "libx264",
        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", d / "tmp.mp4")
    run(FFMPEG, "-v", "error", "-i", d / "tmp.mp4", "-map", "0", "-c", "copy",
        "-metadata:s:v:0", "rotate=90", d / "portrait.mp4")
    # PAL SD: 720x576 with 4:3 display (non-square pixels), interlaced top field first, mono
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25,setdar=4/3",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "3", "-c:v", "libx264",
        "-preset", "ultrafast", "-flags", "+ilme+ildct", "-x264opts", "tff=1",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1", d / "sd.mp4")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "3", d / "mono.wav")
    # a camera's 6000x4000 frame, held upright (EXIF orientation 6), and a print CMYK JPEG
    run(CONVERT, "-size", "6000x4000", "gradient:white-darkgreen", "-quality", "85",
        d / "cam.jpg")
    run(EXIFTOOL, "-overwrite_original", "-Orientation#=6", d / "cam.jpg")
    run(CONVERT, "-size", "900x600", "gradient:yellow-blue", "-colorspace", "CMYK",
        "-quality", "90", d / "cmyk.jpg")
    (d / "bomb.png").write_bytes(png_bomb(40000, 30000))
    # a phone's HEIC photo, and a 16-bit PNG
    run(CONVERT, "-size", "1200x900", "gradient:red-blue", "-quality", "80", d / "phone.heic")
    run(CONVERT, "-size", "1000x500", "gradient:black-white", "-depth", "16", d / "deep.png")
    return d


def png_bomb(width, height):
    """A valid PNG header declaring width x height pixels, with a few bytes of data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def stream(probe, kind):
    return [s for s in probe["streams"] if s["codec_type"] == kind][0]


def rotation(s):
    """The display rotation ffprobe reports for a video stream (side data or tag), 0 if none."""
    for sd in s.get("side_data_list", []):
        if "rotation" in sd:
            return int(sd["rotation"]) % 360
    return int(s.get("tags", {}).get("rotate", 0)) % 360


def hls_rungs(api, token, rend):
    """RESOLUTION of every variant of an HLS master playlist, in order."""
    text = api("GET", rend["links"]["download"], token).text
    return [line.split("RESOLUTION=")[1].split(",")[0] for line in text.splitlines()
            if line.startswith("#EXT-X-STREAM-INF") and "RESOLUTION=" in line]


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
    # each rendition job says how it was made and where its time went
    wf = api("GET", "/api/v1/workflows", editor.token,
             params={"asset_id": a["id"], "type": "ingest"}).json()["items"][0]
    jobs = api("GET", f"/api/v1/workflows/{wf['id']}", editor.token).json()["activities"]
    proxy_job = [j for j in jobs if (j["output"] or {}).get("profile") == "proxy"][0]
    cmd = proxy_job["output"]["command"]
    assert cmd[0].endswith("ffmpeg") and "libx264" in cmd and "/dev/stdin" in " ".join(cmd)
    assert set(proxy_job["output"]["timings_ms"]) == {"encode", "check", "store"}


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


def test_portrait_phone_video_is_turned_upright(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "portrait.mp4", "video/mp4")
    assert a["status"] == "ready", a["failure_reason"]
    assert (a["width"], a["height"]) == (720, 1280)  # displayed size
    rs = renditions(api, editor.token, a["id"])
    assert all(r["status"] == "ready" for r in rs.values()), rs
    for name in ("proxy", "web_low"):
        v = stream(ffprobe(fetch(api, editor.token, rs[name]["links"]["download"],
                                 tmp_path / f"{name}.mp4")), "video")
        # the pixels are upright and no player turns them again
        assert (v["width"], v["height"], rotation(v)) == (720, 1280, 0), (name, v)
    poster = stream(ffprobe(fetch(api, editor.token, rs["poster"]["links"]["download"],
                                  tmp_path / "poster.jpg")), "video")
    assert (poster["width"], poster["height"]) == (720, 1280)
    # the ladder: 720x1280 is the source's own size; the 360 rung is 360x640
    assert hls_rungs(api, editor.token, rs["hls"]) == ["720x1280", "360x640"]


def test_interlaced_sd_is_deinterlaced_with_square_pixels(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "sd.mp4", "video/mp4")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert set(rs) == {"proxy", "web_low", "poster", "hls", "waveform"}
    p = ffprobe(fetch(api, editor.token, rs["proxy"]["links"]["download"], tmp_path / "p.mp4"))
    v, au = stream(p, "video"), stream(p, "audio")
    assert (v["width"], v["height"]) == (768, 576)  # 4:3 at 576 lines, square pixels
    assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    assert v.get("field_order", "progressive") == "progressive"
    assert au["channels"] == 2  # mono master, stereo proxy
    assert abs(float(p["format"]["duration"]) - 3.0) <= 0.5
    assert hls_rungs(api, editor.token, rs["hls"]) == ["768x576", "480x360"]


def test_mono_audio_keeps_its_channel(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "mono.wav", "audio/wav")
    assert a["status"] == "ready", a["failure_reason"]
    rs = renditions(api, editor.token, a["id"])
    assert set(rs) == {"preview", "broadcast", "waveform"}
    assert all(r["status"] == "ready" for r in rs.values()), rs
    p = stream(ffprobe(fetch(api, editor.token, rs["preview"]["links"]["download"],
                             tmp_path / "p.mp3")), "audio")
    assert (p["codec_name"], p["channels"]) == ("mp3", 1)
    b = ffprobe(fetch(api, editor.token, rs["broadcast"]["links"]["download"],
                      tmp_path / "b.wav"))
    s = stream(b, "audio")
    assert (s["codec_name"], s["sample_rate"], s["channels"]) == ("pcm_s24le", "48000", 1)
    assert abs(float(b["format"]["duration"]) - 3.0) <= 0.5
    peaks = api("GET", rs["waveform"]["links"]["download"], editor.token).json()
    assert peaks["points"] == len(peaks["peaks"]) == 30  # 10 per second
    assert max(hi for _, hi in peaks["peaks"]) > 0.05  # a sine, not silence


def thumbs_of(api, token, asset_id, tmp_path):
    rs = renditions(api, token, asset_id)
    assert set(rs) == {"thumbs"} and rs["thumbs"]["status"] == "ready", rs
    out = {}
    for f in rs["thumbs"]["files"]:
        path = fetch(api, token, f["href"], tmp_path / f["name"])
        out[f["name"]] = stream(ffprobe(path), "video")
    return out


def test_camera_jpeg_orientation_6(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "cam.jpg", "image/jpeg")
    assert a["status"] == "ready", a["failure_reason"]
    assert (a["width"], a["height"]) == (4000, 6000)
    t = thumbs_of(api, editor.token, a["id"], tmp_path)
    assert {n: (s["width"], s["height"]) for n, s in t.items()} == {
        "thumb_300.webp": (200, 300), "thumb_800.webp": (533, 800),
        "thumb_1200.webp": (800, 1200)}


def test_cmyk_jpeg_thumbnails_are_srgb(api, editor, media, tmp_path):
    a = ingest(api, editor.token, media / "cmyk.jpg", "image/jpeg")
    assert a["status"] == "ready", a["failure_reason"]
    t = thumbs_of(api, editor.token, a["id"], tmp_path)
    assert (t["thumb_300.webp"]["width"], t["thumb_300.webp"]["height"]) == (300, 200)
    # decoded back, the picture is the gradient's colours (yellow at the top, blue at the
    # bottom), not the inverted or washed-out colours of CMYK bytes read as RGB
    path = tmp_path / "thumb_800.webp"
    top = subprocess.run([CONVERT, str(path), "-crop", "800x20+0+0", "-resize", "1x1!",
                          "-depth", "8", "txt:-"], capture_output=True, text=True, check=True)
    bottom = subprocess.run([CONVERT, str(path), "-crop", "800x20+0+513", "-resize", "1x1!",
                             "-depth", "8", "txt:-"], capture_output=True, text=True, check=True)

    def rgb(txt):
        inside = txt.stdout.splitlines()[-1].split("(")[1].split(")")[0]
        return [float(x.rstrip("%")) for x in inside.split(",")[:3]]
    r, g, b = rgb(top)
    assert r > 180 and g > 180 and b < 100, (r, g, b)
    r, g, b = rgb(bottom)
    assert b > 100 and b > r + 50 and b > g + 50, (r, g, b)  # in-gamut CMYK blue


@pytest.mark.parametrize("name, mime, size, thumbs", [
    ("phone.heic", "image/heic", (1200, 900), [(300, 225), (800, 600), (1200, 900)]),
    ("deep.png", "image/png", (1000, 500), [(300, 150), (800, 400), (1000, 500)]),
])
def test_heic_and_16_bit_png_thumbnails(api, editor, media, tmp_path, name, mime, size, thumbs):
    a = ingest(api, editor.token, media / name, mime)
    assert a["status"] == "ready", a["failure_reason"]
    assert (a["width"], a["height"]) == size
    t = thumbs_of(api, editor.token, a["id"], tmp_path)
    # never upscaled: the 1200 px thumbnail of a 1000 px picture is 1000 px
    assert [(t[f"thumb_{n}.webp"]["width"], t[f"thumb_{n}.webp"]["height"])
            for n in (300, 800, 1200)] == thumbs
    assert all(s["pix_fmt"] in ("yuv420p", "yuva420p", "argb", "rgb24") for s in t.values())


def test_png_decompression_bomb_is_refused(api, editor, media):
    a = ingest(api, editor.token, media / "bomb.png", "image/png")
    assert a["status"] == "failed"
    assert "40000 x 30000" in a["failure_reason"] and "limit" in a["failure_reason"], a
    assert renditions(api, editor.token, a["id"]) == {}


def test_truncated_mp4_fails_before_any_rendition(api, editor, media, tmp_path):
    data = (media / "land.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    a = ingest(api, editor.token, cut, "video/mp4")
    assert a["status"] == "failed" and "moov atom not found" in a["failure_reason"], a
    assert renditions(api, editor.token, a["id"]) == {}


def test_server_limits_refuse_long_or_large_masters(fresh_server, media):
    srv = fresh_server(env={"ACERVO_MAX_MEDIA_DURATION": "2s",
                            "ACERVO_MAX_VIDEO_PIXELS": "100000",
                            "ACERVO_MAX_IMAGE_PIXELS": "1000000"})
    api = Api(srv.base_url, srv.s3_url)
    tok = srv.admin_token
    a = ingest(api, tok, media / "land.mp4", "video/mp4")  # 640x360, 3 s
    assert a["status"] == "failed"
    assert a["failure_reason"].endswith(
        "the video picture is 640x360 (0.2 Mpixel), over this server's limit of 0.1 Mpixel "
        "(max_video_pixels)"), a["failure_reason"]
    a = ingest(api, tok, media / "mono.wav", "audio/wav")  # 3 s
    assert a["status"] == "failed"
    assert a["failure_reason"].endswith(
        "the audio lasts 0h00m03s, over this server's limit of 0h00m02s (max_media_duration)"), \
        a["failure_reason"]
    a = ingest(api, tok, media / "p.jpg", "image/jpeg")  # 1600x1200
    assert a["status"] == "failed" and "(max_image_pixels)" in a["failure_reason"], a
    assert renditions(api, tok, a["id"]) == {}
    # within the limits, the same server ingests
    a = ingest(api, tok, media / "cmyk.jpg", "image/jpeg")  # 900x600
    assert a["status"] == "ready", a["failure_reason"]


def encoders(srv):
    """ffmpeg processes writing into this server's job scratch directories (from /proc)."""
    mark = str(srv.data_dir / "tmp" / "job-").encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if mark in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def scratch_dirs(srv):
    tmp = srv.data_dir / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("job-")) if tmp.exists() \
        else []


def test_crash_and_cancel_leave_no_encoder_and_no_scratch(fresh_server, tmp_path):
    """kill -9 of a worker mid-encode: its ffmpeg dies with it, the retry removes the dead
    attempt's files; cancel: the encoder is killed at once and its files removed; a
    leftover directory from before a restart is swept when a worker starts."""
    long_mp4 = tmp_path / "long.mp4"
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "testsrc2=size=1280x720:rate=25,noise=alls=8:allf=t", "-f", "lavfi", "-i",
        "sine=sample_rate=48000", "-t", "20", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", long_mp4)
    srv = fresh_server(start=False, env={"ACERVO_JOB_LEASE": "2s"})
    stale = srv.data_dir / "tmp" / "job-987654-1"
    stale.mkdir(parents=True)
    (stale / "proxy.mp4").write_bytes(b"\0" * 1000)
    srv.start()
    wait_until(lambda: not stale.exists(), 15, what="the leftover scratch directory to go")
    api = Api(srv.base_url, srv.s3_url)
    tok = srv.admin_token
    a = upload(api, tok, long_mp4.read_bytes(), filename="long.mp4", wait=False)
    asset_id = a["assetId"] if "assetId" in a else a["id"]

    def encoding():
        wfs = api("GET", "/api/v1/workflows", tok, params={"asset_id": asset_id}).json()["items"]
        if not wfs:
            return None
        wf = api("GET", f"/api/v1/workflows/{wfs[0]['id']}", tok).json()
        jobs = [j for j in wf["activities"] if j["step"] == "renditions"
                and j["status"] == "leased" and (j["progress"] or 0) > 0]
        pids = encoders(srv)
        return (wf, jobs[0], pids) if jobs and pids else None
    wf, job, pids = wait_until(encoding, 120, interval=0.1, what="an encode in progress")
    dead_dir = srv.data_dir / "tmp" / f"job-{job['id']}-{job['attempt']}"
    assert dead_dir.is_dir() and any(dead_dir.iterdir())
    victim = int(job["lease_owner"].split("/")[1])
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(p) for p in pids), 5, what="the encoder to die")

    # the lease expires, the job runs again: the dead attempt's files go
    def again():
        w = api("GET", f"/api/v1/workflows/{wf['id']}", tok).json()
        j = [x for x in w["activities"] if x["id"] == job["id"]][0]
        return j if j["status"] == "leased" and j["attempt"] > job["attempt"] else None
    wait_until(again, 60, interval=0.1, what="the job's next attempt")
    wait_until(lambda: not dead_dir.exists(), 10, what="the dead attempt's directory to go")

    _, _, pids = wait_until(encoding, 60, interval=0.1, what="the encode running again")
    r = api("POST", f"/api/v1/workflows/{wf['id']}/cancel", tok)
    assert r.status_code in (200, 202), r.text
    wait_until(lambda: not any(pid_alive(p) for p in pids), 3, what="the encoder to be killed")
    wait_until(lambda: api("GET", f"/api/v1/workflows/{wf['id']}", tok).json()["status"]
               == "cancelled", 15, what="the workflow to end cancelled")
    wait_until(lambda: not scratch_dirs(srv), 10, what="every scratch directory to go")
    assert not encoders(srv)
    a = get_asset(api, tok, asset_id)
    assert a["status"] == "failed" and a["failure_reason"].startswith("cancelled"), a
    # the rendition the cancelled job was making is not left 'running'
    rs = api("GET", f"/api/v1/assets/{asset_id}/renditions", tok).json()["items"]
    assert all(x["status"] != "running" for x in rs), rs
