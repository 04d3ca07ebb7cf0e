#!/usr/bin/python3
"""acervo upload / download against awscli (aws s3 cp) on the same acervod, same file.

Both clients send the file to acervod in 16 MiB parts, 4 at a time (awscli through a config
of multipart_chunksize 16MB and max_concurrent_requests 4 against acervod's S3 endpoint;
acervo to the presigned part URLs of the REST upload flow), and fetch it back, 4 ranges at a
time. Wall time of each command from start to exit, runs alternated, best kept; peak RSS of
each client. acervo's download includes its end-to-end SHA-256 check (it reads the file
back); awscli checks nothing. Target: acervo >= 1.0x awscli's throughput both ways.
"""
import argparse
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402
from bench import BenchError, log  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
AWS = "/usr/bin/aws"
TARGET = 1.0
MIB = 1 << 20


def settle():
    """Starts every run from the same memory: what earlier runs left dirty written back and
    the page cache emptied (root only), so that no run pays for another's pages or gains
    from them. Without this, on a 2-core VM whose memory is reclaimed from outside, the
    same download measured anywhere from 160 to 660 MiB/s, depending on how much of the
    earlier runs' 8 GiB was still in memory. Returns False if the cache could not be
    dropped."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def peak_rss_kib(argv, env, timeout=3600):
    """Wall seconds, stdout and peak RSS (KiB) of one run (wait4's rusage)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"{argv[0]} timed out")
        time.sleep(0.005)
    secs = time.monotonic() - t0
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(str(a) for a in argv[:3])} failed ({proc.returncode}): "
                         f"{err[-1500:]}")
    return secs, out, ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser(prog="bench/run cli", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=common.parse_size, default=common.parse_size("2G"),
                    help="size of the file (default 2G)")
    ap.add_argument("--quick", action="store_true", help="a fast check: --size 256M")
    ap.add_argument("--runs", type=int, default=2, help="runs per client and direction (2)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep bench/work/cli")
    args = ap.parse_args()
    if args.quick:
        args.size = common.parse_size("256M")
    if not 1 <= args.runs <= 20:
        ap.error("--runs must be in 1..20")
    acervod, acervo = REPO / "build/acervod", REPO / "build/acervo"
    started = common.begin("cli", (acervod, acervo, Path(AWS)),
                           "make build; awscli from install-deps")
    if not started:
        return 2
    work, rundir, info = started
    size = args.size
    big = work / f"input-{size}.bin"
    common.make_input(big, size)
    srv = common.Acervod(acervod, rundir / "data", rundir / "acervod.log")
    try:
        srv.start()
        r = srv.api("POST", "/api/v1/keys", json={"role": "editor", "name": "bench-cli"})
        if r.status_code != 201:
            raise BenchError(f"POST /api/v1/keys: {r.status_code} {r.text[:300]}")
        key = r.json()
        home = rundir / "home"
        home.mkdir()
        (rundir / "aws-config").write_text(
            "[default]\ns3 =\n  multipart_threshold = 16MB\n  multipart_chunksize = 16MB\n"
            "  max_concurrent_requests = 4\n  addressing_style = path\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and not k.startswith("ACERVO_")}
        env.update(HOME=str(home), AWS_CONFIG_FILE=str(rundir / "aws-config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(rundir / "no-credentials"),
                   AWS_ACCESS_KEY_ID=key["s3_access_key"],
                   AWS_SECRET_ACCESS_KEY=key["s3_secret_key"], AWS_DEFAULT_REGION="us-east-1",
                   AWS_PAGER="", ACERVO_SERVER=srv.base, ACERVO_KEY=key["token"])
        s3url = f"http://127.0.0.1:{srv.s3_port}"
        up = {"acervo": [], "aws": []}
        down = {"acervo": [], "aws": []}
        rss = {"acervo": 0, "aws": 0}
        ids, keys, digests = [], [], []
        cold = True  # every run started with the page cache emptied
        for run_no in range(args.runs):
            # the same bytes once per asset: one asset per content, so each run's file differs
            digests.append(common.stamp_run(big, run_no))
            cold = settle() and cold
            log(f"run {run_no + 1}: acervo upload")
            secs, out, kib = peak_rss_kib([str(acervo), "upload", str(big), "--type", "video",
                                           "--parallel", "4"],
                                          env)
            up["acervo"].append(secs)
            rss["acervo"] = max(rss["acervo"], kib)
            ids.append(out.strip())
            log(f"  {size / secs / MIB:.0f} MiB/s, peak RSS {kib / 1024:.1f} MiB")
            cold = settle() and cold
            log(f"run {run_no + 1}: aws s3 cp (upload)")
            k = f"bench/cli-{secrets.token_hex(4)}.bin"
            secs, _, kib = peak_rss_kib([AWS, "--endpoint-url", s3url, "s3", "cp", "--quiet",
                                         str(big), f"s3://archive/{k}"], env)
            up["aws"].append(secs)
            rss["aws"] = max(rss["aws"], kib)
            keys.append(k)
            log(f"  {size / secs / MIB:.0f} MiB/s, peak RSS {kib / 1024:.1f} MiB")
        for aid, digest in zip(ids, digests):
            if common.wait_master(srv, aid)["content_hash"] != digest:
                raise BenchError(f"asset {aid}: the master's SHA-256 is not the file's")
        for run_no in range(args.runs):
            dst = rundir / "down.bin"
            dst.unlink(missing_ok=True)
            cold = settle() and cold
            log(f"run {run_no + 1}: acervo download")
            secs, _, kib = peak_rss_kib([str(acervo), "download", ids[run_no], "-o", str(dst),
                                         "--parallel", "4"], env)
            down["acervo"].append(secs)
            rss["acervo"] = max(rss["acervo"], kib)
            log(f"  {size / secs / MIB:.0f} MiB/s (SHA-256 checked), peak RSS {kib / 1024:.1f} MiB")
            dst.unlink()
            cold = settle() and cold
            log(f"run {run_no + 1}: aws s3 cp (download)")
            secs, _, kib = peak_rss_kib([AWS, "--endpoint-url", s3url, "s3", "cp", "--quiet",
                                         f"s3://archive/{keys[run_no]}", str(dst)], env)
            down["aws"].append(secs)
            rss["aws"] = max(rss["aws"], kib)
            log(f"  {size / secs / MIB:.0f} MiB/s, peak RSS {kib / 1024:.1f} MiB")
            if common.sha256_file(dst) != digests[run_no]:
                raise BenchError("aws s3 cp fetched other bytes than it sent")
            dst.unlink()
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(rundir, ignore_errors=True)

    def mbs(secs):
        return size / min(secs) / MIB

    ur = mbs(up["acervo"]) / mbs(up["aws"])
    dr = mbs(down["acervo"]) / mbs(down["aws"])
    ok = ur >= TARGET and dr >= TARGET
    date = common.run(["date", "-u"], 10).stdout.strip()
    lines = [f"## {date} — acervo client vs awscli, {common.human_size(size)}"
             f"{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}; acervo {info['commit']}",
             f"- both clients: 16 MiB parts or ranges, 4 at a time, against one acervod on "
             f"loopback; best of {args.runs} runs, wall time of the command; "
             + ("each run started with dirty pages written back and the page cache dropped"
                if cold else "the page cache could NOT be dropped (not root): runs share it"),
             "",
             "| | acervo | aws s3 cp | ratio | target |", "|---|---|---|---|---|",
             f"| upload (to the master recorded by complete) | {mbs(up['acervo']):.0f} MiB/s "
             f"| {mbs(up['aws']):.0f} MiB/s | {ur:.2f}x | >= {TARGET}x |",
             f"| download (acervo: SHA-256 checked) | {mbs(down['acervo']):.0f} MiB/s | "
             f"{mbs(down['aws']):.0f} MiB/s | {dr:.2f}x | >= {TARGET}x |",
             f"| client peak RSS | {rss['acervo'] / 1024:.1f} MiB | {rss['aws'] / 1024:.1f} MiB "
             f"| | |", "",
             f"- every run, MiB/s: acervo up "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in up['acervo'])}; aws up "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in up['aws'])}; acervo down "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in down['acervo'])}; aws down "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in down['aws'])}",
             f"- targets: {'PASS' if ok else 'MISS'}", ""]
    return common.publish("\n".join(lines), ok, args.no_record)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(2)
