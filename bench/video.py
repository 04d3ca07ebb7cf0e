#!/usr/bin/python3
"""acervo benchmarks: video renditions, the ingest's proxy encode against ffmpeg alone.

Called by `bench/run video`. See bench/README.md. A generated 60 s 1080p master (H.264
+ AAC, ~20 Mb/s, with grain so the encoder works as on camera footage) is uploaded to a
release acervod with its defaults (one worker, one `transcode` slot) and its ingest runs
every video profile. Figures:

1. the `proxy` job's wall time (lease to rendition recorded: encode, probe of the output,
   store) against the very command the job ran (from the job's output), run alone by
   this script on the same file: target <= 1.05x;
2. end to end, from the `complete` request to the asset `ready`, with every profile: the
   seconds and where they go (each step's queue wait, encode, check and store).

Runs alternate acervo and the peer; the best of each is compared.
"""

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402  (helpers shared with the storage benchmarks)

HERE = common.HERE
REPO = common.REPO
log = common.log
BenchError = common.BenchError

FFMPEG = "/usr/bin/ffmpeg"
WIDTH, HEIGHT, FPS = 1920, 1080, 25
SECONDS = 60
QUICK_SECONDS = 10
TARGET_RATIO = 1.05  # acervo's proxy job over ffmpeg alone, at most
READY_TIMEOUT = 1800
PROFILES = ("proxy", "web_low", "poster", "hls", "waveform")


# --------------------------------------------------------------------------- inputs


def make_input(seconds):
    """The master: testsrc2 with temporal grain and a tone, libx264 CRF 18, AAC 192k."""
    path = HERE / "work" / f"video-{seconds}s-{HEIGHT}p{FPS}.mp4"
    if path.exists():
        log(f"input {path.relative_to(REPO)} already there, reusing")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"generating a {seconds} s {WIDTH}x{HEIGHT} master (libx264 CRF 18 + AAC) ...")
    t0 = time.monotonic()
    tmp = path.with_suffix(".tmp.mp4")
    r = common.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},noise=alls=6:allf=t+u",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k",
                    "-movflags", "+faststart", str(tmp)], 1800)
    if r.returncode != 0:
        raise BenchError(f"input generation failed: {r.stderr.strip()[-500:]}")
    tmp.rename(path)
    log(f"generated in {time.monotonic() - t0:.1f} s ({path.stat().st_size / common.MB:.0f} MB)")
    return path


def stamped(base, run_no):
    """A copy of base with a unique comment tag (same streams, bytes copied): acervo refuses
    a second asset with the same content, so every run uploads a new master."""
    out = HERE / "work" / "video-run.mp4"
    r = common.run([FFMPEG, "-v", "error", "-y", "-i", str(base), "-map", "0", "-c", "copy",
                    "-metadata", f"comment=acervo bench run {run_no} {uuid.uuid4()}",
                    "-movflags", "+faststart", str(out)], 300)
    if r.returncode != 0:
        raise BenchError(f"cannot copy the master: {r.stderr.strip()[-500:]}")
    return out


# --------------------------------------------------------------------------- runs


def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def acervo_run(srv, path):
    """Upload path, wait until ready; the timings of the ingest from its workflow."""
    size = path.stat().st_size
    digest = common.sha256_file(path)  # also puts the file in the page cache
    w0 = time.time()
    up = common.acervo_upload(srv, path, size, digest)
    t_complete = w0 + up["create_s"] + up["parts_s"]  # wall clock, as the catalog's stamps
    aid = up["asset_id"]
    # polled once a second, so that the client takes no CPU from the encodes; the time of
    # ready is the catalog's (the ingest's last step finishing), not the poll's
    asset = common.wait_asset(srv, aid, lambda a: a["status"] == "ready", "the asset ready",
                              READY_TIMEOUT, 1.0)
    rends = srv.api("GET", f"/api/v1/assets/{aid}/renditions").json()["items"]
    got = {x["profile"]: x for x in rends if not x["on_demand"]}
    if set(got) != set(PROFILES) or any(x["status"] != "ready" for x in got.values()):
        raise BenchError(f"renditions: {[(x['profile'], x['status']) for x in rends]}")
    if abs(got["proxy"]["duration_ms"] / 1000 - asset["duration_ms"] / 1000) > 0.5:
        raise BenchError(f"proxy lasts {got['proxy']['duration_ms']} ms")
    wfs = srv.api("GET", "/api/v1/workflows",
                  params={"asset_id": aid, "type": "ingest"}).json()["items"]
    wf = srv.api("GET", f"/api/v1/workflows/{wfs[0]['id']}").json()
    jobs = []
    for j in wf["activities"]:
        out = j["output"] or {}
        jobs.append({"step": j["step"], "profile": out.get("profile"),
                     "wait_s": ts(j["started_at"]) - ts(j["created_at"]),
                     "run_s": ts(j["finished_at"]) - ts(j["started_at"]),
                     "timings_ms": out.get("timings_ms"), "command": out.get("command"),
                     "attempt": j["attempt"]})
    proxy = [j for j in jobs if j["profile"] == "proxy"][0]
    t_ready = ts(wf["finished_at"])
    return {"asset_id": aid, "e2e_s": t_ready - t_complete,
            "upload_s": up["create_s"] + up["parts_s"],
            "jobs": jobs, "proxy_s": proxy["run_s"], "proxy": proxy,
            "proxy_bytes": got["proxy"]["file_size_bytes"],
            "wf_s": ts(wf["finished_at"]) - ts(wf["created_at"])}


def warm_up(base, run_dir):
    """Untimed: ffmpeg and libx264 loaded and the master read once, before anything counts."""
    r = common.run([FFMPEG, "-v", "error", "-y", "-t", "2", "-i", str(base), "-c:v", "libx264",
                    "-preset", "veryfast", "-c:a", "aac", "-f", "mp4",
                    str(run_dir / "warm.mp4")], 300)
    if r.returncode != 0:
        raise BenchError(f"warm-up encode failed: {r.stderr.strip()[-300:]}")
    (run_dir / "warm.mp4").unlink()
    common.sha256_file(base)


def peer_command(command, out_dir):
    """The proxy job's ffmpeg command with its output moved from the job's scratch
    directory (gone by now) to out_dir; the input stays /dev/stdin."""
    outs = [a for a in command if a.startswith("file:") and a.endswith("/proxy.mp4")]
    if len(outs) != 1 or command[0] != FFMPEG:
        raise BenchError(f"unexpected proxy command: {' '.join(command)[:300]}")
    scratch = outs[0][len("file:"):-len("/proxy.mp4")]
    return [a.replace(scratch, str(out_dir)) for a in command]


def peer_run(command, path, out_dir):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    argv = peer_command(command, out_dir)
    with open(path, "rb") as f:
        t0 = time.monotonic()
        r = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=READY_TIMEOUT)
        secs = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"ffmpeg alone failed ({r.returncode}): {r.stderr[-500:]!r}")
    return {"secs": secs, "bytes": (out_dir / "proxy.mp4").stat().st_size}


# --------------------------------------------------------------------------- report


def breakdown(run):
    """Where the seconds of one ingest went, step by step."""
    parts = []
    for j in run["jobs"]:
        name = j["step"] + (f" {j['profile']}" if j["profile"] else "")
        t = j["timings_ms"]
        inner = (f" (encode {t['encode'] / 1000:.2f}, check {t['check'] / 1000:.2f}, store "
                 f"{t['store'] / 1000:.2f})" if t else "")
        parts.append(f"{name} {j['run_s']:.2f} s{inner}")
    return parts


def report(info, args, seconds, in_mb, acervo, peer):
    best_a = min(acervo, key=lambda r: r["proxy_s"])
    best_p = min(peer, key=lambda r: r["secs"])
    ratio = best_a["proxy_s"] / best_p["secs"]
    ok = ratio <= TARGET_RATIO
    e2e = min(acervo, key=lambda r: r["e2e_s"])
    rend = [j for j in e2e["jobs"] if j["step"] == "renditions"]
    other = [j for j in e2e["jobs"] if j["step"] != "renditions"]
    encode_s = sum(j["timings_ms"]["encode"] for j in rend) / 1000
    date = common.run(["date", "-u"], 10).stdout.strip()
    ver = common.run([FFMPEG, "-version"], 10).stdout.split("\n")[0]
    lines = [f"## {date} — video renditions{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}, kernel {info['kernel']}",
             f"- acervo: {info['commit']}, binary {info['binary']}, defaults (1 worker, "
             f"transcode:1); {ver}",
             f"- input: {seconds} s {WIDTH}x{HEIGHT} {FPS} fps H.264 (CRF 18, with grain) + AAC, "
             f"{in_mb:.0f} MB, in the page cache",
             "",
             "| benchmark | acervo | peer | ratio | target | result |",
             "|---|---|---|---|---|---|",
             f"| 1. proxy (1080p H.264 5 Mb/s veryfast + AAC), best of {len(acervo)}: the job "
             f"(lease → recorded) vs the same ffmpeg command alone | {best_a['proxy_s']:.2f} s | "
             f"{best_p['secs']:.2f} s | {ratio:.3f}x | <= {TARGET_RATIO}x | "
             f"{common.verdict(ok)} |",
             f"| 2. complete → ready, all {len(PROFILES)} video profiles, best of "
             f"{len(acervo)} | {e2e['e2e_s']:.1f} s | — | {e2e['e2e_s'] / seconds:.2f}x the "
             f"clip's duration | record | info |",
             "",
             "Details:",
             "",
             "- proxy job runs: " + ", ".join(
                 f"{r['proxy_s']:.2f} s (encode {r['proxy']['timings_ms']['encode'] / 1000:.2f}, "
                 f"check {r['proxy']['timings_ms']['check'] / 1000:.2f}, store "
                 f"{r['proxy']['timings_ms']['store'] / 1000:.2f})" for r in acervo)
             + "; ffmpeg alone: " + ", ".join(f"{r['secs']:.2f} s" for r in peer)
             + f"; outputs {best_a['proxy_bytes'] / common.MB:.1f} MB (acervo) and "
             f"{best_p['bytes'] / common.MB:.1f} MB (alone)",
             f"- the command (from the job's output, its scratch directory shown as JOB; the "
             f"peer runs it with the master as stdin and its own output directory): "
             f"`{' '.join(peer_command(best_a['proxy']['command'], 'JOB'))}`",
             "- end to end runs: " + ", ".join(f"{r['e2e_s']:.1f} s" for r in acervo)
             + f"; the upload before it (4 parallel 16 MiB parts, not counted): "
             f"{e2e['upload_s']:.2f} s",
             f"- where the {e2e['e2e_s']:.1f} s went (best run; one transcode slot, so the "
             f"renditions run one after the other, each ffmpeg using both cores): "
             + "; ".join(breakdown(e2e)),
             f"- renditions {sum(j['run_s'] for j in rend):.1f} s of which encoding "
             f"{encode_s:.1f} s; the other steps {sum(j['run_s'] for j in other):.2f} s; "
             f"queue waits and hand-offs between steps (first job's creation to ready, minus "
             f"the jobs' run times) "
             f"{e2e['wf_s'] - sum(j['run_s'] for j in e2e['jobs']):.2f} s",
             ]
    return "\n".join(lines) + "\n", ok


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/run video", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2,
                    help="runs of each, alternating acervo and ffmpeg alone (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a {QUICK_SECONDS} s master, one run of each")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep acervod's data dir")
    ap.add_argument("--acervod", default=os.environ.get("ACERVOD", str(REPO / "build/acervod")),
                    help="acervod binary (or $ACERVOD; default build/acervod)")
    args = ap.parse_args()
    seconds = QUICK_SECONDS if args.quick else SECONDS
    if args.quick:
        args.runs = 1
    if args.runs < 1:
        log("--runs must be at least 1")
        return 2
    binary = Path(args.acervod)
    if not os.access(binary, os.X_OK) or not os.access(binary.parent / "acervo-probe", os.X_OK):
        log(f"{binary} or acervo-probe beside it not found (run `make build`)")
        return 2
    if not os.access(FFMPEG, os.X_OK):
        log(f"{FFMPEG} is not installed (ffmpeg; scripts/install-deps installs it)")
        return 2

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    run_dir = HERE / "work" / "video-run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    info = common.machine_info(HERE / "work")
    info["binary"] = common.binary_info(binary)
    srv = common.Acervod(binary, run_dir / "data", run_dir / "acervod.log")
    acervo, peer = [], []
    try:
        base = make_input(seconds)
        in_mb = base.stat().st_size / common.MB
        srv.start()
        warm_up(base, run_dir)
        command = None
        for i in range(args.runs):
            path = stamped(base, i)
            # the order alternates (the first run must go acervo first: its job gives the
            # command), so neither side always runs on a machine the other just warmed
            for side in (("acervo", "peer") if i % 2 == 0 else ("peer", "acervo")):
                if side == "acervo":
                    res = acervo_run(srv, path)
                    acervo.append(res)
                    command = res["proxy"]["command"]
                    log(f"run {i + 1}/{args.runs}, acervo: ready {res['e2e_s']:.1f} s after "
                        f"complete, proxy job {res['proxy_s']:.2f} s")
                else:
                    p = peer_run(command, path, run_dir / "alone")
                    peer.append(p)
                    log(f"run {i + 1}/{args.runs}, ffmpeg alone: {p['secs']:.2f} s")
    except BenchError as e:
        log(f"ERROR: {e}")
        return 2
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
            (HERE / "work" / "video-run.mp4").unlink(missing_ok=True)
    text, ok = report(info, args, seconds, in_mb, acervo, peer)
    return common.publish(text, ok, args.no_record)


if __name__ == "__main__":
    sys.exit(main())
