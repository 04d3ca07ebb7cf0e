#!/usr/bin/python3
"""acervod's S3 endpoint against a real Ceph RADOS Gateway, same client, same run.

Both servers run on this machine on 127.0.0.1: acervod (release build, its filesystem store
in bench/work) and Ceph 16.2's radosgw over one OSD with bluestore on a sparse file in the
same directory. The same client drives both:
- a multipart upload of one file (default 2 GiB) and its download, with awscli
  (`aws s3 cp`, 16 MiB parts, 4 at a time), wall time of the command; every run starts with
  dirty pages written back and the page cache dropped (root), and an upload's input read
  back into memory (untimed), runs alternate, best kept;
- GETs of one 20 KiB object through a presigned URL with wrk (2 threads, 16 connections;
  radosgw runs with tcp_nodelay, without which its kept-alive answers wait ~40 ms each).
The upload is also set beside what this machine can hash: MD5 (the ETag of every part) and
SHA-256 (acervo's content hash) of the same bytes, one after the other on one core, measured
in the same run with the OpenSSL acervod links. Targets: upload >= 1.5x RGW, downloads
(large and small) >= 1.2x RGW.
"""
import argparse
import hashlib
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402
from bench import BenchError, log  # noqa: E402
from ceph import CephError, CephRGW  # noqa: E402
from cli import peak_rss_kib, settle  # noqa: E402

import boto3  # noqa: E402
import botocore.config  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
AWS = "/usr/bin/aws"
MIB = 1 << 20
TARGETS = {"upload": 1.5, "download": 1.2, "small": 1.2}


def hash_rates(path, limit=512 * MIB):
    """MiB/s of MD5 and SHA-256 over (up to limit bytes of) the file, from memory."""
    with open(path, "rb") as f:
        data = f.read(limit)
    rates = {}
    for name in ("md5", "sha256"):
        best = 0.0
        for _ in range(3):
            h = hashlib.new(name)
            t0 = time.perf_counter()
            view = memoryview(data)
            for off in range(0, len(data), 4 * MIB):
                h.update(view[off:off + 4 * MIB])
            best = max(best, len(data) / (time.perf_counter() - t0) / MIB)
        rates[name] = best
    rates["both"] = 1 / (1 / rates["md5"] + 1 / rates["sha256"])
    return rates


class Peer:
    """One S3 server as the clients see it."""

    def __init__(self, name, endpoint, access, secret, bucket, prefix):
        self.name = name
        self.endpoint = endpoint
        self.access = access
        self.secret = secret
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access,
            aws_secret_access_key=secret, region_name="us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          signature_version="s3v4"))

    def env(self, home, config):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and not k.startswith("ACERVO_")}
        env.update(HOME=str(home), AWS_CONFIG_FILE=str(config),
                   AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
                   AWS_ACCESS_KEY_ID=self.access, AWS_SECRET_ACCESS_KEY=self.secret,
                   AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
        return env

    def url(self, key):
        return f"s3://{self.bucket}/{key}"


def warm(path):
    """Reads the file (untimed), so an upload starts with its input in memory for both
    servers: the run measures them, not this machine's disk reads."""
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def cp(peer, env, src, dst):
    secs, _, _ = peak_rss_kib([AWS, "--endpoint-url", peer.endpoint, "s3", "cp", "--quiet",
                               str(src), str(dst)], env)
    return secs


def main():
    ap = argparse.ArgumentParser(prog="bench/run s3", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=common.parse_size, default=common.parse_size("2G"),
                    help="size of the file (default 2G)")
    ap.add_argument("--quick", action="store_true", help="a fast check: --size 256M, 1 run")
    ap.add_argument("--runs", type=int, default=2, help="runs per server and direction (2)")
    ap.add_argument("--wrk-seconds", type=int, default=10, help="small GETs per server (10)")
    ap.add_argument("--objectstore", default="bluestore", choices=("bluestore", "memstore"),
                    help="the OSD's object store (bluestore, as in production)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep bench/work/s3")
    args = ap.parse_args()
    if args.quick:
        args.size = common.parse_size("256M")
        args.runs = 1
    if not 1 <= args.runs <= 20:
        ap.error("--runs must be in 1..20")
    acervod = REPO / "build/acervod"
    tools = (acervod, Path(AWS), Path("/usr/bin/radosgw"), Path("/usr/bin/ceph-osd"))
    started = common.begin("s3", tools, "make build; scripts/install-deps --bench")
    if not started:
        return 2
    work, rundir, info = started
    size = args.size
    big = work / f"input-{size}.bin"
    common.make_input(big, size)
    small = rundir / "small-20k.bin"
    small.write_bytes(os.urandom(20 * 1024))
    home = rundir / "home"
    home.mkdir()
    config = rundir / "aws-config"
    config.write_text("[default]\ns3 =\n  multipart_threshold = 16MB\n"
                      "  multipart_chunksize = 16MB\n  max_concurrent_requests = 4\n"
                      "  addressing_style = path\n")

    srv = common.Acervod(acervod, rundir / "acervod", rundir / "acervod.log")
    rgw = CephRGW(rundir / "ceph", objectstore=args.objectstore, osd_bytes=max(16 << 30, 4 * size))
    up = {"acervo": [], "rgw": []}
    down = {"acervo": [], "rgw": []}
    wrks = {}
    cold = True
    try:
        srv.start()
        r = srv.api("POST", "/api/v1/keys", json={"role": "editor", "name": "bench-s3"})
        if r.status_code != 201:
            raise BenchError(f"POST /api/v1/keys: {r.status_code} {r.text[:300]}")
        key = r.json()
        log("starting Ceph (monitor, OSD on "
            f"{args.objectstore}, radosgw) ...")
        t0 = time.monotonic()
        rgw.start()
        access, secret = rgw.user("bench")
        log(f"radosgw up at {rgw.endpoint} in {time.monotonic() - t0:.1f} s")
        tag = secrets.token_hex(4)
        peers = [Peer("acervo", f"http://127.0.0.1:{srv.s3_port}", key["s3_access_key"],
                      key["s3_secret_key"], "archive", f"bench/{tag}/"),
                 Peer("rgw", rgw.endpoint, access, secret, "bench", f"{tag}/")]
        peers[1].s3.create_bucket(Bucket="bench")
        rates = hash_rates(big)
        log(f"this machine hashes MD5 {rates['md5']:.0f} MiB/s, SHA-256 "
            f"{rates['sha256']:.0f} MiB/s, both in turn {rates['both']:.0f} MiB/s")

        keys = {p.name: [] for p in peers}
        for run_no in range(args.runs):
            order = peers if run_no % 2 == 0 else peers[::-1]
            for p in order:
                k = f"{p.prefix}big-{run_no}.bin"
                cold = settle() and cold
                warm(big)
                log(f"run {run_no + 1}: {p.name} upload")
                secs = cp(p, p.env(home, config), big, p.url(k))
                up[p.name].append(secs)
                keys[p.name].append(k)
                log(f"  {size / secs / MIB:.0f} MiB/s")
        digest = common.sha256_file(big)
        for run_no in range(args.runs):
            order = peers if run_no % 2 == 0 else peers[::-1]
            for p in order:
                dst = rundir / "down.bin"
                dst.unlink(missing_ok=True)
                cold = settle() and cold
                log(f"run {run_no + 1}: {p.name} download")
                secs = cp(p, p.env(home, config), p.url(keys[p.name][run_no]), dst)
                down[p.name].append(secs)
                log(f"  {size / secs / MIB:.0f} MiB/s")
                if common.sha256_file(dst) != digest:
                    raise BenchError(f"{p.name}: the download is not the file uploaded")
                dst.unlink()
        for p in peers:
            k = f"{p.prefix}small.bin"
            p.s3.put_object(Bucket=p.bucket, Key=k, Body=small.read_bytes())
            url = p.s3.generate_presigned_url("get_object", Params={"Bucket": p.bucket, "Key": k},
                                              ExpiresIn=3600)
            code, n, _ = common.curl_get(url)
            if code != 200 or n != small.stat().st_size:
                raise BenchError(f"{p.name}: presigned GET of the small object: {code}, {n} bytes")
            log(f"{p.name}: 20 KiB presigned GETs, wrk {args.wrk_seconds} s")
            res = common.run(["wrk", "-t2", "-c16", f"-d{args.wrk_seconds}s", "--latency", url],
                             args.wrk_seconds + 60)
            if res.returncode != 0:
                raise BenchError(f"wrk failed: {res.stderr}")
            wrks[p.name] = common.parse_wrk(res.stdout)
            if wrks[p.name]["non2xx"] or any(wrks[p.name]["socket_errors"]):
                raise BenchError(f"wrk against {p.name}: errors\n{res.stdout}")
            log(f"  {wrks[p.name]['rps']:.0f} requests/s, p99 {wrks[p.name]['lat_p99']}")
    except CephError as e:
        raise BenchError(str(e)) from e
    finally:
        rgw.stop()
        srv.stop()
        if not args.keep:
            shutil.rmtree(rundir, ignore_errors=True)

    def mibs(secs):
        return size / min(secs) / MIB

    ratio = {"upload": mibs(up["acervo"]) / mibs(up["rgw"]),
             "download": mibs(down["acervo"]) / mibs(down["rgw"]),
             "small": wrks["acervo"]["rps"] / wrks["rgw"]["rps"]}
    ok = all(ratio[k] >= TARGETS[k] for k in TARGETS)
    date = common.run(["date", "-u"], 10).stdout.strip()
    lines = [f"## {date} — S3: acervod vs Ceph RGW ({args.objectstore}), "
             f"{common.human_size(size)}{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}; acervo {info['commit']}; Ceph 16.2 radosgw (beast), 1 monitor, "
             f"1 OSD ({args.objectstore} on a sparse file in the same directory)",
             f"- client: awscli (`aws s3 cp`, 16 MiB parts, 4 at a time), best of {args.runs}; "
             + ("each run started with dirty pages written back and the page cache dropped, "
                "an upload's input then read into memory" if cold
                else "the page cache could NOT be dropped (not root)")
             + f"; small GETs: wrk -t2 -c16 {args.wrk_seconds} s on a presigned URL",
             "",
             "| | acervod | RGW | ratio | target |", "|---|---|---|---|---|",
             f"| multipart upload | {mibs(up['acervo']):.0f} MiB/s | {mibs(up['rgw']):.0f} MiB/s "
             f"| {ratio['upload']:.2f}x | >= {TARGETS['upload']}x |",
             f"| download | {mibs(down['acervo']):.0f} MiB/s | {mibs(down['rgw']):.0f} MiB/s "
             f"| {ratio['download']:.2f}x | >= {TARGETS['download']}x |",
             f"| 20 KiB GETs | {wrks['acervo']['rps']:.0f}/s (p99 {wrks['acervo']['lat_p99']}) "
             f"| {wrks['rgw']['rps']:.0f}/s (p99 {wrks['rgw']['lat_p99']}) "
             f"| {ratio['small']:.2f}x | >= {TARGETS['small']}x |", "",
             f"- this machine hashes (OpenSSL, from memory, one core): MD5 {rates['md5']:.0f} "
             f"MiB/s, SHA-256 {rates['sha256']:.0f} MiB/s, both in turn {rates['both']:.0f} "
             f"MiB/s; acervod's upload is {mibs(up['acervo']) / rates['both']:.2f}x of that",
             f"- every run, MiB/s: acervod up "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in up['acervo'])}; RGW up "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in up['rgw'])}; acervod down "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in down['acervo'])}; RGW down "
             f"{', '.join(f'{size / s / MIB:.0f}' for s in down['rgw'])}",
             f"- targets: {'PASS' if ok else 'MISS'}", ""]
    return common.publish("\n".join(lines), ok, args.no_record)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(2)
