"""The ingest workflow end to end: real media generated at test time (ffmpeg, ImageMagick,
exiftool), uploaded through the real API, probed by the real worker.

The shared server is used: ingest needs nothing but a worker, which role all starts.
"""

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import (assert_problem, create_asset, direct_upload, get_asset, random_bytes,
                      run_acervod, upload, wait_ingest)

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
CONVERT = "/usr/bin/convert"
EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"
STEPS = ["assemble", "detect", "probe", "renditions", "index"]


def run(*argv):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", "2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-metadata", "creation_time=2024-05-01T10:00:00Z", d / "clip.mp4")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=44100:duration=3", "-ac", "2", "-c:a", "libmp3lame",
        "-b:a", "128k", d / "tone.mp3")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "sine=frequency=660:sample_rate=44100:duration=2", "-c:a", "libmp3lame",
        d / "other.mp3")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000:duration=1.5", "-c:a", "pcm_s24le",
        d / "tone.wav")
    run(CONVERT, "-size", "640x480", "gradient:red-blue", "-quality", "90", d / "photo.jpg")
    run(EXIFTOOL, "-overwrite_original", "-Make=Canon", "-Model=EOS R5",
        "-LensModel=RF24-70mm F2.8 L IS USM", "-ExposureTime=1/250", "-FNumber=2.8",
        "-ISO=400", "-DateTimeOriginal=2024:05:01 10:00:00", "-GPSLatitude=40.4168",
        "-GPSLatitudeRef=N", "-GPSLongitude=3.7038", "-GPSLongitudeRef=W",
        "-Orientation#=6", d / "photo.jpg")
    run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", d / "silent.mp4")
    clip = (d / "clip.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(clip[:len(clip) * 3 // 10])
    # fixed "random" bytes: fresh ones now and then look like something to libmagic
    # (an OpenPGP key, say), which changes the reason's wording, not the outcome
    (d / "random.mp4").write_bytes(random.Random(42).randbytes(64 * 1024))
    return d


def ingest(api, token, path, filename=None, mime_type="video/mp4", direct=False):
    data = Path(path).read_bytes()
    name = filename or Path(path).name
    if direct:
        asset = direct_upload(api, token, data, filename=name, mime_type=mime_type, wait=False)
    else:
        asset = upload(api, token, data, filename=name, mime_type=mime_type, wait=False)
    return wait_ingest(api, token, asset["id"], timeout=120)


def workflow_of(api, token, asset_id):
    r = api("GET", "/api/v1/workflows", token, params={"asset_id": asset_id})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["type"] == "ingest"
    r = api("GET", f"/api/v1/workflows/{items[0]['id']}", token)
    assert r.status_code == 200
    return r.json()


def test_video_is_ready_with_its_technical_metadata(api, editor, media):
    a = ingest(api, editor.token, media / "clip.mp4")
    assert a["status"] == "ready", a["failure_reason"]
    assert a["type"] == "video" and a["mime_type"] == "video/mp4"
    assert abs(a["duration_ms"] - 2000) <= 100
    assert (a["width"], a["height"]) == (320, 240)
    assert (a["video_codec"], a["audio_codec"]) == ("h264", "aac")
    assert abs(a["frame_rate"] - 25) < 0.01
    assert a["bitrate_kbps"] > 0
    assert a["captured_at"].startswith("2024-05-01T10:00:00")
    tm = a["technical_metadata"]
    video = [s for s in tm["streams"] if s["type"] == "video"][0]
    audio = [s for s in tm["streams"] if s["type"] == "audio"][0]
    assert video["pix_fmt"] == "yuv420p" and video["profile"] and video["rotation"] == 0
    assert audio["sample_rate"] == 48000 and audio["channels"] == 1
    assert "declared" not in tm
    wf = workflow_of(api, editor.token, a["id"])
    assert wf["status"] == "completed"
    assert [s["name"] for s in wf["steps"]] == STEPS
    # proxy, web_low, poster, hls, waveform: one job each on the transcode queue
    assert {s["name"]: s["jobs_total"] for s in wf["steps"]}["renditions"] == 5
    assert {a["queue"] for a in wf["activities"] if a["step"] == "renditions"} == {"transcode"}


def test_audio_files_are_ready(api, editor, media):
    mp3 = ingest(api, editor.token, media / "tone.mp3", mime_type="audio/mpeg")
    assert mp3["status"] == "ready", mp3["failure_reason"]
    assert mp3["type"] == "audio" and mp3["audio_codec"] == "mp3"
    assert abs(mp3["duration_ms"] - 3000) <= 100
    assert mp3["width"] is None and mp3["video_codec"] is None
    stream = mp3["technical_metadata"]["streams"][0]
    assert stream["channels"] == 2 and stream["sample_rate"] == 44100

    wav = ingest(api, editor.token, media / "tone.wav", mime_type="audio/wav", direct=True)
    assert wav["status"] == "ready", wav["failure_reason"]
    assert wav["type"] == "audio" and wav["audio_codec"] == "pcm_s24le"
    assert abs(wav["duration_ms"] - 1500) <= 50


def test_jpeg_with_exif_and_gps(api, editor, media):
    a = ingest(api, editor.token, media / "photo.jpg", mime_type="image/jpeg", direct=True)
    assert a["status"] == "ready", a["failure_reason"]
    assert a["type"] == "image" and a["mime_type"] == "image/jpeg"
    # orientation 6: stored 640x480, displayed 480x640
    assert (a["width"], a["height"]) == (480, 640)
    assert a["duration_ms"] is None
    assert a["captured_at"].startswith("2024-05-01T10:00:00")
    tm = a["technical_metadata"]
    assert (tm["width"], tm["height"], tm["orientation"]) == (640, 480, 6)
    exif = tm["exif"]
    assert (exif["make"], exif["model"]) == ("Canon", "EOS R5")
    assert exif["lens_model"].startswith("RF24-70mm")
    assert exif["exposure_time"] == "1/250" and exif["f_number"] == pytest.approx(2.8)
    assert exif["iso"] == 400
    assert exif["gps"]["latitude"] == pytest.approx(40.4168, abs=1e-4)
    assert exif["gps"]["longitude"] == pytest.approx(-3.7038, abs=1e-4)


def test_type_comes_from_the_content_not_the_name(api, editor, media):
    a = ingest(api, editor.token, media / "other.mp3", filename="not-a-video.mp4",
               mime_type="video/mp4")
    assert a["status"] == "ready", a["failure_reason"]
    assert a["type"] == "audio" and a["mime_type"] == "audio/mpeg"
    assert a["technical_metadata"]["declared"] == {"type": "video", "mime_type": "video/mp4"}


@pytest.fixture(scope="module")
def masters(tmp_path_factory):
    """Masters whose names and types tell little: an MXF (the broadcast master format), an
    MP4 and a WAV with no extension, and a text that is no media at all. One set per
    upload flow, with other content (the same bytes twice would be a duplicate)."""
    d = tmp_path_factory.mktemp("masters")
    for flow, hz in (("multipart", 500), ("direct", 700)):
        run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000", "-t", "1",
            "-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-f", "mxf", d / f"master.mxf-{flow}")
        run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=192x108:rate=25",
            "-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000", "-t", "1",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4",
            d / f"clip-octet-{flow}")
        run(FFMPEG, "-v", "error", "-f", "lavfi", "-i",
            f"sine=frequency={hz}:sample_rate=48000:duration=1", "-c:a", "pcm_s16le",
            "-f", "wav", d / f"NOEXT-{flow}")
    (d / "minutes.txt").write_text("Minutes of the editorial meeting\n" * 200)
    return d


@pytest.mark.parametrize("name,filename,mime,kind,mime_out", [
    ("master.mxf", "master.mxf", "application/mxf", "video", "application/mxf"),
    ("clip-octet", "clip.mp4", "application/octet-stream", "video", "video/mp4"),
    ("NOEXT", "NOEXT", "application/octet-stream", "audio", "audio/x-wav"),
])
@pytest.mark.parametrize("direct", [False, True], ids=["multipart", "direct"])
def test_a_generic_or_unknown_mime_type_lets_the_content_decide(api, editor, masters, name,
                                                                filename, mime, kind, mime_out,
                                                                direct):
    if direct and mime == "application/octet-stream":
        mime = None  # the request's Content-Type is generic: the content decides
    path = masters / f"{name}-{'direct' if direct else 'multipart'}"
    data = path.read_bytes()
    if direct:
        params = {"filename": filename, **({"mime_type": mime} if mime else {})}
        r = api("POST", "/api/v1/assets/direct", editor.token, params=params, data=data,
                headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        a = wait_ingest(api, editor.token, r.json()["id"], timeout=120)
    else:
        a = ingest(api, editor.token, path, filename=filename, mime_type=mime)
    assert a["status"] == "ready", a["failure_reason"]
    assert a["type"] == kind
    assert a["mime_type"].split(";")[0] in (mime_out, "audio/wav", "audio/vnd.wave")


def test_a_file_that_is_no_media_fails_with_a_clear_reason(api, editor, masters):
    a = ingest(api, editor.token, masters / "minutes.txt", filename="minutes.txt",
               mime_type="application/octet-stream")
    assert a["status"] == "failed"
    assert a["failure_reason"].startswith("detect failed after 1 attempt: unrecognised content"), \
        a["failure_reason"]


def test_hostile_files_fail_with_a_clear_reason_and_harm_nobody(api, editor, media, server):
    procs_before = sorted(server_children(server))
    rnd = ingest(api, editor.token, media / "random.mp4")
    assert rnd["status"] == "failed"
    assert rnd["failure_reason"] == "detect failed after 1 attempt: unrecognised content " \
                                    "(libmagic: data)"
    trunc = ingest(api, editor.token, media / "truncated.mp4")
    assert trunc["status"] == "failed"
    assert "moov atom not found" in trunc["failure_reason"]
    # the master is kept (the bytes were received); only the ingest failed
    assert trunc["content_hash"] and trunc["master_storage_key"]
    wf = workflow_of(api, editor.token, trunc["id"])
    assert wf["status"] == "failed"
    assert [s["status"] for s in wf["steps"]] == ["completed", "failed"]
    failed = [e for e in wf["history"] if e["type"] == "job.failed"][0]
    assert failed["detail"]["retryable"] is False
    # zero bytes never reach a worker: refused at creation
    r = api("POST", "/api/v1/assets", editor.token,
            json={"filename": "empty.mp4", "size": 0, "mime_type": "video/mp4"})
    assert_problem(r, 400)
    # the API, the worker and the supervisor are the same processes as before
    assert sorted(server_children(server)) == procs_before
    assert get_asset(api, editor.token, rnd["id"])["status"] == "failed"
    good = ingest(api, editor.token, media / "silent.mp4")
    assert good["status"] == "ready", good["failure_reason"]
    assert good["audio_codec"] is None and (good["width"], good["height"]) == (160, 120)


def server_children(server):
    from conftest import child_pids
    return [p for p in child_pids(server.pid)
            if not Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"/bin/")]


def test_upload_completes_with_202_before_the_master_exists(api, editor):
    data = random_bytes(6 * 1024 * 1024)
    created = create_asset(api, editor.token, data, filename="big.mov",
                           mime_type="video/quicktime")
    from conftest import complete, put_parts
    r = complete(api, editor.token, created["assetId"], put_parts(created, data))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "processing" and body["workflow_id"]
    a = wait_ingest(api, editor.token, created["assetId"])
    # random bytes are no media (libmagic's guess at them varies, so only the outcome)
    assert a["status"] == "failed" and a["failure_reason"].startswith("detect failed")


def test_parts_cannot_change_once_completed(api, editor):
    from conftest import complete, put_parts
    data = random_bytes(6 * 1024 * 1024)
    created = create_asset(api, editor.token, data, filename="sealed.mov",
                           mime_type="video/quicktime")
    parts = put_parts(created, data)
    assert complete(api, editor.token, created["assetId"], parts).status_code == 202
    url = created["parts"][0]["url"]
    r = requests.put(url, data=b"x" * created["partSize"], timeout=60)
    assert r.status_code == 404 and b"NoSuchUpload" in r.content, r.text
    a = wait_ingest(api, editor.token, created["assetId"])
    assert a["content_hash"] == hashlib.sha256(data).hexdigest()


def test_asset_processing_without_an_ingest_gets_one_at_start(fresh_server, media):
    """An asset completed before the workflow engine existed (processing, master recorded,
    no workflow) is ingested when acervod starts."""
    from conftest import Api
    srv = fresh_server()
    api = Api(srv.base_url, srv.s3_url)
    a = ingest(api, srv.admin_token, media / "silent.mp4")
    assert a["status"] == "ready"
    srv.stop()
    # acervod sql: the search index's triggers need acervod's functions
    run_acervod("sql", "--data-dir", srv.data_dir,
                "DELETE FROM workflow_events WHERE workflow_id IN "
                f"(SELECT id FROM workflows WHERE asset_id = '{a['id']}');"
                f"DELETE FROM workflows WHERE asset_id = '{a['id']}';"
                "UPDATE assets SET status = 'processing', technical_metadata = NULL, "
                "duration_ms = NULL, width = NULL, height = NULL "
                f"WHERE id = '{a['id']}'", check=0)
    srv.start()
    b = wait_ingest(api, srv.admin_token, a["id"])
    assert b["status"] == "ready", b["failure_reason"]
    assert (b["width"], b["height"]) == (160, 120) and b["duration_ms"] > 900
    assert b["content_hash"] == a["content_hash"]
    wf = workflow_of(api, srv.admin_token, a["id"])
    assemble = [x for x in wf["activities"] if x["step"] == "assemble"][0]
    assert assemble["output"]["sha256"] == a["content_hash"]
    assert "was processing without an ingest" in srv.log_text()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_kill9_of_everything_mid_ingest_then_restart_finishes_it_once(fresh_server, media,
                                                                      delay):
    """The whole server (supervisor, API, worker, probe) dies at some point of an ingest;
    after a restart the ingest finishes, once."""
    import time
    from conftest import Api
    srv = fresh_server(env={"ACERVO_JOB_LEASE": "2s"})
    api = Api(srv.base_url, srv.s3_url)
    data = (media / "clip.mp4").read_bytes()
    asset = upload(api, srv.admin_token, data, filename="crash.mp4", wait=False)
    time.sleep(delay)
    srv.kill()
    srv.start()
    a = wait_ingest(api, srv.admin_token, asset["id"], timeout=60)
    assert a["status"] == "ready", a["failure_reason"]
    assert a["content_hash"] == hashlib.sha256(data).hexdigest()
    wf = workflow_of(api, srv.admin_token, asset["id"])
    assert wf["status"] == "completed"
    completed = [(e["step"], e["job_id"]) for e in wf["history"] if e["type"] == "job.completed"]
    assert len(set(completed)) == len(completed), "a job completed twice"
    assert sorted({s for s, _ in completed}) == ["assemble", "detect", "index", "probe",
                                                 "renditions"]
    assert sum(1 for s, _ in completed if s == "renditions") == 5
