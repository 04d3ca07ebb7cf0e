#!/usr/bin/python3
"""Many clients at once: the REST API under a mixed load, its latency and its memory.

acervod (release build) serves a catalog of --catalog imported assets (bench/gen-corpus,
so searches have real work) plus --masters small JPEG images uploaded and ingested first
(the assets that are read, patched and downloaded). bench/load/loadgen (build/loadgen:
libcurl, one thread, so the client takes little of the 2 cores) then runs --clients
closed-loop clients for --seconds, --rounds times, each client on its own connection,
picking each request by weight: metadata GET 35, list 10, search 20, PATCH 10, download 15,
small upload 10 (a new 20 KiB JPEG each time, which the workers then ingest).

Measured per round: count, errors, p50/p90/p99/max per operation; the API process's peak
RSS during the round (sampled every 100 ms) and its RSS after --idle seconds without
requests. Targets: 0 errors, API RSS <= 128 MiB at peak and < 64 MiB idle, metadata GET
p99 <= 250 ms. No other server speaks acervo's API, so this suite has no peer: its targets
are absolute, and its rounds show whether memory comes back.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402
from bench import BenchError, log  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONVERT = "/usr/bin/convert"
OPS = ["get", "list", "search", "patch", "download", "upload"]
TARGETS = {"errors": 0, "peak_mib": 128, "idle_mib": 64, "get_p99_ms": 250}
SEED = 7


def make_jpeg(path, width, height, seed):
    r = subprocess.run([CONVERT, "-size", f"{width}x{height}", "-seed", str(seed),
                        "plasma:fractal", "-quality", "85", str(path)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"convert failed: {r.stderr}")


def import_catalog(acervod, data, count):
    work = HERE / "work"
    path = work / f"corpus-{count}.jsonl"
    if not path.exists() or path.stat().st_size == 0:
        log(f"generating {count} catalog records")
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            subprocess.run([str(REPO / "build/gen-corpus"), "--count", str(count), "--seed",
                            "42"], stdout=out, check=True)
        tmp.rename(path)
    log(f"importing {count} records")
    res = subprocess.run([str(acervod), "import", "--data-dir", str(data), "--log-level", "warn",
                          str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"acervod import failed: {res.stderr[-2000:]}")
    words = set()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 2000:
                break
            for w in json.loads(line)["title"].split():
                w = w.strip(".,;:¿?¡!\"'()").lower()
                if len(w) >= 4 and w.isalpha() and w.isascii():
                    words.add(w)
    return sorted(words)


def upload_masters(srv, rundir, n):
    """n distinct JPEGs through the direct upload; waits until every one is ready."""
    ids = []
    src = rundir / "master.jpg"
    make_jpeg(src, 1280, 720, SEED)
    body = src.read_bytes()
    for i in range(n):
        data = body + os.urandom(16)  # after the end of the image: still valid, new content
        r = srv.api("POST", f"/api/v1/assets/direct?filename=master-{i}.jpg&title=master+{i}",
                    data=data, headers={"Content-Type": "image/jpeg"})
        if r.status_code not in (201, 202):
            raise BenchError(f"direct upload: {r.status_code} {r.text[:300]}")
        ids.append(r.json()["id"])
    deadline = time.monotonic() + 600
    pending = set(ids)
    while pending:
        if time.monotonic() > deadline:
            raise BenchError(f"{len(pending)} masters not ready after 600 s")
        for aid in list(pending):
            st = srv.api("GET", f"/api/v1/assets/{aid}").json()["status"]
            if st == "ready":
                pending.discard(aid)
            elif st == "failed":
                raise BenchError(f"asset {aid} failed its ingest")
        time.sleep(0.5)
    return ids, len(body)


def rss_kib(pid):
    """VmRSS, RssAnon and RssFile of pid, and its Pss (its share of what it maps: a page of
    the catalog file mapped by each of its connections counts once), KiB (0 if gone)."""
    out = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "Pss": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in out:
                out[k] = int(v.split()[0])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            k, _, v = line.partition(":")
            if k == "Pss":
                out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def api_pid(srv):
    return common.listening_pid(common.child_pids(srv.proc.pid), srv.port)


class Peak(threading.Thread):
    """The API process's RSS every 100 ms while a round runs: the peak VmRSS, and the
    anonymous part at that moment (its own memory; the rest is the catalog file's pages,
    mapped)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_anon = 0
        self.peak_pss = 0
        self.ev = threading.Event()

    def run(self):
        while not self.ev.wait(0.1):
            r = rss_kib(self.pid)
            self.peak = max(self.peak, r["VmRSS"])
            self.peak_anon = max(self.peak_anon, r["RssAnon"])
            self.peak_pss = max(self.peak_pss, r["Pss"])

    def stop(self):
        self.ev.set()
        self.join(timeout=5)
        return self.peak


def main():
    ap = argparse.ArgumentParser(prog="bench/run load", description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=150, help="concurrent clients (150)")
    ap.add_argument("--seconds", type=float, default=60, help="length of a round (60)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    ap.add_argument("--idle", type=float, default=20, help="seconds idle before RSS (20)")
    ap.add_argument("--catalog", type=int, default=100000, help="imported assets (100000)")
    ap.add_argument("--masters", type=int, default=200, help="uploaded images (200)")
    ap.add_argument("--mix", default=None,
                    help="weights other than the default, e.g. get=50,search=50 (see loadgen)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for acervod (a setting to compare)")
    ap.add_argument("--quick", action="store_true",
                    help="a fast check: 1 round of 15 s, 10000 imported, 50 masters")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep bench/work/load")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.catalog, args.masters = 1, 15, 10000, 50
    acervod, loadgen = REPO / "build/acervod", REPO / "build/loadgen"
    tools = (acervod, loadgen, REPO / "build/gen-corpus", Path(CONVERT))
    started = common.begin("load", tools, "make build; imagemagick from install-deps")
    if not started:
        return 2
    work, rundir, info = started
    data = rundir / "data"
    words = import_catalog(acervod, data, args.catalog)
    random.Random(SEED).shuffle(words)
    (rundir / "words").write_text("\n".join(words[:400]) + "\n")
    small = rundir / "small.jpg"
    make_jpeg(small, 200, 150, SEED + 1)

    extra = dict(e.split("=", 1) for e in args.env)
    srv = common.Acervod(acervod, data, rundir / "acervod.log", extra_env=extra)
    rounds = []
    try:
        srv.start()
        log(f"uploading {args.masters} masters and waiting for their ingest")
        ids, master_bytes = upload_masters(srv, rundir, args.masters)
        (rundir / "assets").write_text("\n".join(ids) + "\n")
        pid = api_pid(srv)
        if not pid:
            raise BenchError("cannot find the API process")
        start_rss = common.vm_rss_kib(pid)
        log(f"API process {pid}: {start_rss / 1024:.1f} MiB before the first round")
        for n in range(args.rounds):
            log(f"round {n + 1}: {args.clients} clients for {args.seconds:.0f} s")
            peak = Peak(pid)
            peak.start()
            r = subprocess.run([str(loadgen), "--base", srv.base, "--token", srv.token,
                                "--assets", str(rundir / "assets"), "--words",
                                str(rundir / "words"), "--upload", str(small), "--clients",
                                str(args.clients), "--seconds", str(args.seconds)]
                               + (["--mix", args.mix] if args.mix else []),
                               capture_output=True, text=True, timeout=args.seconds + 900)
            peak_kib = peak.stop()
            peak_anon = peak.peak_anon
            peak_pss = peak.peak_pss
            if r.returncode != 0:
                raise BenchError(f"loadgen failed ({r.returncode}): {r.stderr[-1000:]}")
            res = json.loads(r.stdout)
            if api_pid(srv) != pid:
                raise BenchError("the API process was restarted during the round")
            time.sleep(args.idle)
            idle = rss_kib(pid)
            idle_kib = idle["VmRSS"]
            res.update(peak_kib=peak_kib, idle_kib=idle_kib, peak_anon_kib=peak_anon,
                       idle_anon_kib=idle["RssAnon"], peak_pss_kib=peak_pss,
                       idle_pss_kib=idle["Pss"])
            rounds.append(res)
            total = sum(o["count"] for o in res["ops"].values())
            errors = sum(o["errors"] for o in res["ops"].values())
            log(f"  {total / res['seconds']:.0f} requests/s, {errors} errors, API RSS peak "
                f"{peak_kib / 1024:.1f} MiB (anonymous {peak_anon / 1024:.1f}, PSS "
                f"{peak_pss / 1024:.1f}), idle {idle_kib / 1024:.1f} MiB (anonymous "
                f"{idle['RssAnon'] / 1024:.1f}, PSS {idle['Pss'] / 1024:.1f})")
            for op in OPS:
                o = res["ops"][op]
                log(f"    {op:9s} {o['count']:7d}  p50 {o['p50']:8.1f} ms  p99 {o['p99']:8.1f} ms"
                    f"  errors {o['errors']} {o['shown'][:2] if o['errors'] else ''}")
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(rundir, ignore_errors=True)

    errors = sum(o["errors"] for r in rounds for o in r["ops"].values())
    peak_mib = max(r["peak_kib"] for r in rounds) / 1024
    idle_mib = max(r["idle_kib"] for r in rounds) / 1024
    get_p99 = max(r["ops"]["get"]["p99"] for r in rounds)
    ok = (errors <= TARGETS["errors"] and peak_mib <= TARGETS["peak_mib"]
          and idle_mib < TARGETS["idle_mib"] and get_p99 <= TARGETS["get_p99_ms"])
    date = common.run(["date", "-u"], 10).stdout.strip()
    lines = [f"## {date} — load: {args.clients} clients, mixed API operations"
             f"{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}; acervo {info['commit']}",
             f"- catalog: {args.catalog} imported assets + {args.masters} ingested JPEG masters "
             f"({master_bytes // 1024} KiB each); {args.rounds} rounds of {args.seconds:.0f} s, "
             f"{args.idle:.0f} s idle after each; mix "
             + (args.mix or "get 35, list 10, search 20, patch 10, download 15, upload 10")
             + " (uploads: 20 KiB JPEGs)",
             f"- API process RSS before the first round: {start_rss / 1024:.1f} MiB"
             + (f"; acervod's environment: {' '.join(args.env)}" if args.env else ""), "",
             "| round | requests/s | errors | API RSS peak (anon / PSS) | API RSS idle (anon / PSS) | "
             + " | ".join(f"{op} p50/p99 ms" for op in OPS) + " |",
             "|---|---|---|---|---|" + "---|" * len(OPS)]
    for i, r in enumerate(rounds):
        total = sum(o["count"] for o in r["ops"].values())
        errs = sum(o["errors"] for o in r["ops"].values())
        lines.append(f"| {i + 1} | {total / r['seconds']:.0f} | {errs} | "
                     f"{r['peak_kib'] / 1024:.1f} MiB ({r['peak_anon_kib'] / 1024:.1f} / "
                     f"{r['peak_pss_kib'] / 1024:.1f}) | "
                     f"{r['idle_kib'] / 1024:.1f} MiB ({r['idle_anon_kib'] / 1024:.1f} / "
                     f"{r['idle_pss_kib'] / 1024:.1f}) | "
                     + " | ".join(f"{r['ops'][op]['p50']:.1f} / {r['ops'][op]['p99']:.1f}"
                                  for op in OPS) + " |")
    lines += ["",
              f"- targets: errors {errors} (0), API RSS peak {peak_mib:.1f} MiB (<= "
              f"{TARGETS['peak_mib']}), idle {idle_mib:.1f} MiB (< {TARGETS['idle_mib']}), "
              f"metadata GET p99 {get_p99:.1f} ms (<= {TARGETS['get_p99_ms']}): "
              f"{'PASS' if ok else 'MISS'}", ""]
    shown = [f"{op}: {e}" for r in rounds for op, o in r["ops"].items() for e in o["shown"]]
    if shown:
        lines.insert(-1, "- first errors: " + "; ".join(shown[:5]))
    return common.publish("\n".join(lines), ok, args.no_record)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(2)
