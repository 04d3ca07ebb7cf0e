#!/usr/bin/python3
"""acervo benchmarks: the workflow engine against a bare PostgreSQL job queue.

Called by `bench/run jobs`. See bench/README.md. acervod runs with 4 worker processes on
its embedded SQLite catalog; the peer is the classic PostgreSQL queue (enqueue, lease
with FOR UPDATE SKIP LOCKED, complete: three durable transactions a job) driven by
pgbench with 4 clients, on the same machine in the same run. Everything binds 127.0.0.1
and is stopped by its PID.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402  (helpers shared with the storage benchmarks)

HERE = common.HERE
REPO = common.REPO
log = common.log
BenchError = common.BenchError

WORKERS = 4
SLOTS = 32            # ingest slots per worker process
TARGET_RATE = 5000    # no-op activities per second
TARGET_P99_MS = 50    # enqueue-to-start with an idle worker
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Engine:
    """acervod with WORKERS worker processes and diagnostics on."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, Path(data_dir), Path(log_path)
        self.token = secrets.token_hex(32)
        self.port, self.s3_port = common.free_port(), common.free_port()
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACERVO_")}
        env.update(ACERVO_ADMIN_TOKEN=self.token, ACERVO_DIAGNOSTICS="1",
                   ACERVO_WORKERS=str(WORKERS), ACERVO_QUEUES=f"ingest:{SLOTS}",
                   ACERVO_LOG_LEVEL="warn")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "--data-dir", str(self.data_dir), "--listen",
             f"127.0.0.1:{self.port}", "--s3-listen", f"127.0.0.1:{self.s3_port}",
             "--log-format", "text"], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + common.HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"acervod exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        else:
            raise BenchError("acervod did not become healthy")
        # every worker registered (they serve the queue)
        deadline = time.monotonic() + 20
        while self.slots() < WORKERS * SLOTS:
            if time.monotonic() > deadline:
                raise BenchError("the workers did not register")
            time.sleep(0.05)

    def api(self, method, path, **kw):
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kw)

    def slots(self):
        r = self.api("GET", "/api/v1/queues")
        return {q["name"]: q for q in r.json()["items"]}["ingest"]["worker_slots"]

    def start_wf(self, count, session=None):
        s = session or requests
        r = s.post(self.url + "/api/v1/workflows",
                   headers={"Authorization": f"Bearer {self.token}"},
                   json={"type": "diagnostic.noop", "input": {"count": count}}, timeout=120)
        if r.status_code != 201:
            raise BenchError(f"start: {r.status_code} {r.text[:300]}")
        return r.json()["id"]

    def db(self):
        return sqlite3.connect(f"file:{self.data_dir / 'catalog.db'}?mode=ro", uri=True,
                               timeout=60)

    def stop(self):
        if self.proc is None:
            return
        kids = common.descendant_pids(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=common.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        common.wait_gone(kids, 10)
        self.proc = None

    def cpu(self):
        return common.cpu_seconds([self.proc.pid, *common.descendant_pids(self.proc.pid)])


def wait_completed(eng, ids, timeout):
    deadline = time.monotonic() + timeout
    marks = ",".join("?" * len(ids))
    while True:
        with eng.db() as c:
            n = c.execute(f"SELECT count(*) FROM workflows WHERE id IN ({marks}) AND status = "
                          "'completed'", ids).fetchone()[0]
            bad = c.execute(f"SELECT count(*) FROM workflows WHERE id IN ({marks}) AND status "
                            "IN ('failed', 'cancelled')", ids).fetchone()[0]
        if bad:
            raise BenchError(f"{bad} benchmark workflows failed")
        if n == len(ids):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {n} of {len(ids)} workflows completed in {timeout} s")
        time.sleep(0.05)


def bench_throughput(eng, activities, workflows):
    """Fan-out drain rate: `workflows` workflows of activities/workflows no-op jobs each."""
    per = activities // workflows
    cpu0 = eng.cpu()
    t0 = time.monotonic()
    ids = [eng.start_wf(per) for _ in range(workflows)]
    wait_completed(eng, ids, 600)
    wall = time.monotonic() - t0
    cpu = eng.cpu() - cpu0
    marks = ",".join("?" * len(ids))
    with eng.db() as c:
        first, last, n = c.execute(
            f"SELECT min(created_at), max(finished_at), count(*) FROM jobs WHERE workflow_id "
            f"IN ({marks}) AND status = 'completed'", ids).fetchone()
        events = c.execute(f"SELECT count(*) FROM workflow_events WHERE workflow_id IN "
                           f"({marks})", ids).fetchone()[0]
        owners = c.execute(f"SELECT lease_owner, count(*) FROM jobs WHERE workflow_id IN "
                           f"({marks}) GROUP BY lease_owner", ids).fetchall()
    span = (last - first) / 1000
    return {"activities": n, "span_s": span, "rate": n / span, "wall_s": wall,
            "events": events, "cpu_s": cpu, "per_worker": sorted(k for _, k in owners)}


def bench_single(eng, seconds, clients):
    """One workflow per activity, started over HTTP by `clients` threads for `seconds`."""
    ids, lock, stop = [], threading.Lock(), time.monotonic() + seconds

    def client():
        s = requests.Session()
        while time.monotonic() < stop:
            wf = eng.start_wf(1, s)
            with lock:
                ids.append(wf)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_completed(eng, ids, 300)
    wall = time.monotonic() - t0
    return {"workflows": len(ids), "wall_s": wall, "rate": len(ids) / wall}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_latency(eng, n, gap_ms):
    """Enqueue-to-start with idle workers: n single-job workflows, one every gap_ms."""
    time.sleep(1.0)  # the workers settle into their idle wait
    ids = []
    s = requests.Session()
    for _ in range(n):
        ids.append(eng.start_wf(1, s))
        time.sleep(gap_ms / 1000)
    wait_completed(eng, ids, 120)
    marks = ",".join("?" * len(ids))
    with eng.db() as c:
        lat = [started - created for created, started in c.execute(
            f"SELECT created_at, started_at FROM jobs WHERE workflow_id IN ({marks})", ids)]
    return {"n": len(lat), "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
            "max": max(lat), "mean": statistics.mean(lat)}


# --------------------------------------------------------------------------- the peer

PG_SCHEMA = """
CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    status text NOT NULL,
    payload jsonb,
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX jobs_ready ON jobs (queue, id) WHERE status = 'ready';
"""

# one activity: enqueue, lease the oldest ready job, complete it (three commits); a lease
# that finds nothing (another client took the job) completes nothing, and the rate counts
# completed rows, not script runs
PG_SCRIPT = """\
INSERT INTO jobs (queue, status, payload) VALUES ('ingest', 'ready', '{"n": 0}');
WITH l AS (UPDATE jobs SET status = 'leased', lease_until = now() + interval '30 seconds'
  WHERE id = (SELECT id FROM jobs WHERE queue = 'ingest' AND status = 'ready'
              ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id)
  SELECT coalesce(max(id), 0) AS job FROM l \\gset
UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = :job;
"""


class Postgres:
    """A throwaway PostgreSQL cluster on loopback, run as the postgres user if root."""

    def __init__(self, root):
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.port = common.free_port()
        self.proc = None
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, argv, **kw):
        return subprocess.run(self.as_user + argv, check=True, capture_output=True,
                              text=True, timeout=300, **kw)

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self.run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "bench", "--no-sync"])
        log_path = self.root / "postgres.log"
        out = open(log_path, "ab")
        self.proc = subprocess.Popen(
            self.as_user + [str(PG_BIN / "postgres"), "-D", str(self.data), "-p",
                            str(self.port), "-h", "127.0.0.1", "-k", str(self.root),
                            "-c", "fsync=on", "-c", "synchronous_commit=on",
                            "-c", "shared_buffers=256MB", "-c", "max_connections=50"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + 30
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError("postgres did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(0.1)
        self.psql("CREATE DATABASE bench")
        self.psql(PG_SCHEMA, db="bench")

    def psql(self, sql, db="postgres"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench", "-d", db,
                        "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True,
                       capture_output=True, text=True, timeout=120)

    def pgbench(self, script, clients, seconds):
        res = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
                              "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T",
                              str(seconds), "-f", str(script), "bench"],
                             capture_output=True, text=True, timeout=seconds + 120)
        if res.returncode != 0:
            raise BenchError(f"pgbench failed: {res.stderr[-1000:]}")
        m = re.search(r"duration: ([0-9.]+) s", res.stdout)
        if not m:
            raise BenchError(f"cannot read pgbench output: {res.stdout[-1000:]}")
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
                              "-d", "bench", "-tAc",
                              "SELECT count(*) FROM jobs WHERE status = 'completed'"],
                             check=True, capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip()) / float(m.group(1))

    def stop(self):
        if self.proc is None:
            return
        # fast shutdown; to the whole group, as runuser does not pass signals on
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def bench_peer(work, seconds):
    pg = Postgres(work / "pg")
    script = work / "queue.sql"
    script.write_text(PG_SCRIPT)
    try:
        pg.start()
        rate = pg.pgbench(script, WORKERS, seconds)
    finally:
        pg.stop()
    return {"rate": rate}


# --------------------------------------------------------------------------- report


def report(info, args, thr, single, lat, peer):
    ok_rate = thr["rate"] >= TARGET_RATE
    ok_lat = lat["p99"] <= TARGET_P99_MS
    ratio = thr["rate"] / peer["rate"] if peer else None
    lines = [f"## {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())} — workflow engine",
             "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}, kernel {info['kernel']}",
             f"- acervo: {info['commit']}, binary {info['binary']}; {WORKERS} worker processes "
             f"x {SLOTS} ingest slots, SQLite catalog (WAL, synchronous=FULL)",
             "",
             "| benchmark | acervo | peer | ratio | target | result |",
             "|---|---|---|---|---|---|",
             f"| 1. no-op activities/s, fan-out drain ({thr['activities']} jobs) | "
             f"{thr['rate']:.0f}/s | "
             + (f"{peer['rate']:.0f}/s (PostgreSQL SKIP LOCKED queue, pgbench -c {WORKERS})"
                if peer else "—") + " | "
             + (f"{ratio:.2f}x" if ratio else "—") + f" | >= {TARGET_RATE}/s | "
             f"{'PASS' if ok_rate else 'FAIL'} |",
             f"| 2. enqueue-to-start, idle workers, p99 ({lat['n']} workflows) | "
             f"{lat['p99']} ms | — | — | <= {TARGET_P99_MS} ms | {'PASS' if ok_lat else 'FAIL'} |",
             f"| 3. one workflow per activity over HTTP ({single['workflows']} workflows, "
             f"{args.clients} clients) | {single['rate']:.0f}/s | — | — | — | info |",
             "",
             "Details:",
             "",
             f"- drain: {thr['activities']} activities in {thr['span_s']:.2f} s from the first "
             f"enqueue to the last completion ({thr['wall_s']:.2f} s wall with the HTTP starts "
             f"and the polling); {thr['events']} history rows written; acervod CPU "
             f"{thr['cpu_s']:.1f} s; jobs per worker {thr['per_worker']}",
             f"- latency (ms, job created_at to started_at): p50 {lat['p50']}, p90 {lat['p90']}, "
             f"p99 {lat['p99']}, max {lat['max']}, mean {lat['mean']:.1f}",
             f"- single-activity workflows: {single['workflows']} started and completed in "
             f"{single['wall_s']:.1f} s",
             ]
    if peer:
        lines.append(f"- peer: PostgreSQL 15 (fsync on, synchronous_commit on), one activity = "
                     f"INSERT + UPDATE ... FOR UPDATE SKIP LOCKED + UPDATE, three commits, no "
                     f"history rows; pgbench -c {WORKERS} -T {args.pg_seconds}: "
                     f"{peer['rate']:.0f} activities/s")
    return "\n".join(lines) + "\n", ok_rate and ok_lat


def main():
    ap = argparse.ArgumentParser(prog="bench/run jobs", description=__doc__.splitlines()[0])
    ap.add_argument("--activities", type=int, default=100000,
                    help="no-op activities in the drain benchmark (default 100000)")
    ap.add_argument("--workflows", type=int, default=4,
                    help="workflows they are spread over (default 4)")
    ap.add_argument("--latency-n", type=int, default=400, help="latency samples (default 400)")
    ap.add_argument("--single-seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pg-seconds", type=int, default=15)
    ap.add_argument("--no-peer", action="store_true", help="skip the PostgreSQL peer")
    ap.add_argument("--quick", action="store_true", help="20000 activities, 100 samples")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep bench/work/jobs")
    ap.add_argument("--acervod", default=os.environ.get("ACERVOD", str(REPO / "build/acervod")))
    args = ap.parse_args()
    if args.quick:
        args.activities, args.latency_n, args.single_seconds, args.pg_seconds = 20000, 100, 5, 5
    binary = Path(args.acervod)
    if not os.access(binary, os.X_OK):
        log(f"{binary} not found or not executable (run `make build`)")
        return 2
    if not args.no_peer and not (PG_BIN / "postgres").exists():
        log("PostgreSQL 15 is not installed (scripts/install-deps installs it)")
        return 2

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    work = HERE / "work" / "jobs"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    info = common.machine_info(HERE / "work")
    info["binary"] = common.binary_info(binary)
    info.setdefault("kernel", os.uname().release)
    eng = Engine(binary, work / "acervo-data", work / "acervod.log")
    peer = None
    try:
        eng.start()
        log(f"drain: {args.activities} no-op activities over {args.workflows} workflows")
        thr = bench_throughput(eng, args.activities, args.workflows)
        log(f"  {thr['rate']:.0f} activities/s")
        log(f"latency: {args.latency_n} single-job workflows, idle workers")
        lat = bench_latency(eng, args.latency_n, 20)
        log(f"  p50 {lat['p50']} ms, p99 {lat['p99']} ms")
        log(f"single-activity workflows over HTTP for {args.single_seconds} s")
        single = bench_single(eng, args.single_seconds, args.clients)
        log(f"  {single['rate']:.0f} workflows/s")
        eng.stop()
        if not args.no_peer:
            log(f"peer: PostgreSQL SKIP LOCKED queue, pgbench {args.pg_seconds} s")
            peer = bench_peer(work, args.pg_seconds)
            log(f"  {peer['rate']:.0f} activities/s")
    except BenchError as e:
        log(f"ERROR: {e}")
        try:
            log("acervod log tail:\n" + "\n".join(
                eng.log_path.read_text(errors="replace").splitlines()[-40:]))
        except OSError:
            pass
        return 2
    finally:
        eng.stop()
        if not args.keep and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    text, ok = report(info, args, thr, single, lat, peer)
    return common.publish(text, ok, args.no_record)


if __name__ == "__main__":
    sys.exit(main())
