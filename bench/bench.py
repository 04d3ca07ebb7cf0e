#!/usr/bin/python3
"""acervo benchmarks: acervod against nginx on the same files, in the same run.

Called by bench/run (which `make bench` calls). See bench/README.md for what each
benchmark measures and how to read the figures. Everything it starts binds 127.0.0.1
only, is stopped by its PID (or its own process group), and every wait is bounded.
"""

import argparse
import hashlib
import http.client
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
MB = 1_000_000  # throughput figures are decimal MB/s (10^6 bytes per second)
PART_SIZE_ENV = "16M"
SMALL_SIZE = 20 * KIB
UPLOAD_WORKERS = 4
HEALTH_TIMEOUT = 30.0
STOP_TIMEOUT = 45.0  # acervod's default shutdown grace is 30 s
HTTP_TIMEOUT = 600
RSS_INTERVAL = 0.1

TARGETS = {  # benchmark -> (minimum ratio acervo/nginx) ; RSS is an absolute limit
    "upload": 0.9,
    "download": 0.95,
    "small": 0.7,
}
RSS_LIMIT_MIB = 64


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 2G, 256M)")
    mult = {"": 1, "k": KIB, "m": MIB, "g": GIB}[m.group(2).lower()]
    n = int(m.group(1)) * mult
    if n < 1:
        raise argparse.ArgumentTypeError("size must be positive")
    return n


def human_size(n):
    for unit, mult in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= mult and n % mult == 0:
            return f"{n // mult} {unit}"
    return f"{n} B"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, timeout, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def child_pids(pid):
    kids = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids.update(int(k) for k in (task / "children").read_text().split())
        except OSError:
            pass
    return kids


def descendant_pids(pid):
    out, pending = set(), [pid]
    while pending:
        for kid in child_pids(pending.pop()):
            if kid not in out:
                out.add(kid)
                pending.append(kid)
    return out


def vm_rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """user+sys CPU seconds of the given processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime, stime (fields 14 and 15)
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def self_cpu():
    """CPU seconds of this process (client threads) and of its finished children (curl)."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def pid_alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def binary_info(binary):
    """The binary and the Meson options it was built with (from meson-info, if present)."""
    binary = Path(binary).resolve()
    try:
        shown = str(binary.relative_to(REPO))
    except ValueError:
        shown = str(binary)
    try:
        opts = json.loads((binary.parent / "meson-info/intro-buildoptions.json").read_text())
        vals = {o["name"]: o["value"] for o in opts}
        extra = [f"buildtype={vals.get('buildtype')}"]
        if vals.get("b_sanitize") not in (None, "none"):
            extra.append(f"b_sanitize={vals['b_sanitize']}")
        if vals.get("werror") is False:
            extra.append("werror=false")
        return f"{shown} ({', '.join(extra)})"
    except (OSError, ValueError, KeyError, TypeError):
        return shown


def machine_info(work):
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / MIB:.1f} GiB"
                break
    except (OSError, ValueError):
        pass
    fstype = "unknown"
    try:
        r = run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(work)], 10)
        if r.returncode == 0 and r.stdout.strip():
            fstype = r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    commit = "unknown"
    try:
        r = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], 10)
        if r.returncode == 0:
            commit = r.stdout.strip()
            d = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], 10)
            if d.returncode == 0 and d.stdout.strip():
                commit += " + uncommitted changes in src/"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram": mem, "fs": fstype, "commit": commit,
            "kernel": os.uname().release}


# --------------------------------------------------------------------------- inputs


def begin(name, binaries, hint):
    """The start every benchmark shares: its programs are there (or a line says how to get
    them and None is returned), SIGTERM ends the run through its clean-up, and
    bench/work/NAME is new and empty. Returns (work, rundir, machine info)."""
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            log(f"{binary} not found or not executable ({hint})")
            return None
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    work = HERE / "work"
    rundir = work / name
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    return work, rundir, machine_info(work)


def make_input(path, size):
    """size bytes of AES-CTR keystream (random-looking, ~GB/s); reused when present."""
    if path.exists() and path.stat().st_size == size:
        log(f"input {path.name} ({human_size(size)}) already there, reusing")
        return
    log(f"generating {path.name} ({human_size(size)}) ...")
    tmp = path.with_suffix(".tmp")
    t0 = time.monotonic()
    with open(tmp, "wb") as out:
        enc = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pbkdf2",
                                "-pass", "pass:" + secrets.token_hex(16), "-in", "/dev/zero"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        head = subprocess.Popen(["head", "-c", str(size)], stdin=enc.stdout, stdout=out)
        enc.stdout.close()
        try:
            head.wait(timeout=600)
        finally:
            if enc.poll() is None:
                enc.kill()
            enc.wait(timeout=30)
    if tmp.stat().st_size != size:
        raise BenchError(f"input generation wrote {tmp.stat().st_size} bytes, wanted {size}")
    tmp.rename(path)
    log(f"generated in {time.monotonic() - t0:.1f} s")


def sha256_file(path):
    """Hashes the file (which also pulls it into the page cache for both peers)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MIB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------- RSS sampler


def listening_pid(pids, port):
    """Which of pids has a socket listening on 127.0.0.1:port (from /proc/net/tcp)."""
    inodes = set()
    try:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if f[1].endswith(f":{port:04X}") and f[3] == "0A":
                inodes.add(f"socket:[{f[9]}]")
    except OSError:
        return None
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) in inodes:
                    return pid
        except OSError:
            continue
    return None


class RssSampler(threading.Thread):
    """Every 100 ms: VmRSS of the supervisor and each of its descendants; the API process
    is the one listening on the API port (the others are worker processes and their
    children, such as acervo-probe)."""

    def __init__(self, pid, api_port):
        super().__init__(daemon=True)
        self.pid = pid
        self.api_port = api_port
        self.api_pid = None
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.peak_child = {}  # pid -> peak VmRSS KiB
            self.peak_sup = 0
            self.peak_sum = 0
            self.samples = 0

    def sample(self):
        sup = vm_rss_kib(self.pid) or 0
        kids = {k: vm_rss_kib(k) for k in descendant_pids(self.pid)}
        kids = {k: v for k, v in kids.items() if v is not None}
        if self.api_pid not in kids:
            self.api_pid = listening_pid(child_pids(self.pid), self.api_port)
        with self.lock:
            self.samples += 1
            self.peak_sup = max(self.peak_sup, sup)
            self.peak_sum = max(self.peak_sum, sup + sum(kids.values()))
            for k, v in kids.items():
                self.peak_child[k] = max(self.peak_child.get(k, 0), v)

    def snapshot(self):
        with self.lock:
            others = [v for k, v in self.peak_child.items() if k != self.api_pid]
            return {"peak_api_kib": self.peak_child.get(self.api_pid, 0),
                    "peak_other_kib": max(others, default=0),
                    "peak_children": dict(self.peak_child), "peak_supervisor_kib": self.peak_sup,
                    "peak_sum_kib": self.peak_sum, "samples": self.samples}

    def run(self):
        while not self.stop_ev.wait(RSS_INTERVAL):
            self.sample()

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=5)


# --------------------------------------------------------------------------- servers


class Acervod:
    def __init__(self, binary, data_dir, log_path, extra_env=None):
        self.binary = binary
        self.extra_env = extra_env or {}
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.s3_port = free_port()
        self.token = secrets.token_hex(32)
        self.proc = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def start(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ACERVO_") and not k.startswith("AWS_")}
        env.update(ACERVO_ADMIN_TOKEN=self.token, ACERVO_PART_SIZE=PART_SIZE_ENV)
        env.update(self.extra_env)
        argv = [str(self.binary), "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}", "--s3-listen", f"127.0.0.1:{self.s3_port}",
                "--log-level", "warn"]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"acervod exited with {self.proc.returncode} at start-up:\n"
                                 + self.log_tail())
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    log(f"acervod up: pid {self.proc.pid}, API :{self.port}, S3 :{self.s3_port}")
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise BenchError(f"acervod not healthy after {HEALTH_TIMEOUT}s:\n" + self.log_tail())

    def stop(self):
        if self.proc is None:
            return
        kids = descendant_pids(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
            if code != 0:
                log(f"acervod exited with {code} after SIGTERM")
        except subprocess.TimeoutExpired:
            log("acervod did not stop after SIGTERM; killing its process group")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if not wait_gone(kids, 10):
            log(f"acervod children {sorted(kids)} still alive; killing them")
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        headers = dict(self.auth)
        headers.update(kw.pop("headers", {}) or {})
        return requests.request(method, self.base + path, headers=headers,
                                allow_redirects=False, **kw)


class Nginx:
    def __init__(self, prefix):
        self.prefix = prefix
        self.port = free_port()
        self.proc = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self):
        p = self.prefix
        for d in ("www/up", "client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp",
                  "scgi_temp", "logs"):
            (p / d).mkdir(parents=True, exist_ok=True)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = (HERE / "nginx.conf.in").read_text()
        conf = (conf.replace("@PREFIX@", str(p)).replace("@PORT@", str(self.port))
                .replace("@USER@", user))
        (p / "nginx.conf").write_text(conf)
        argv = ["/usr/sbin/nginx", "-p", str(p) + "/", "-c", str(p / "nginx.conf"),
                "-g", "daemon off;"]
        t = run(argv[:-2] + ["-t"], 30)
        if t.returncode != 0:
            raise BenchError("nginx -t failed:\n" + t.stderr)
        with open(p / "stderr.log", "ab") as errf:
            self.proc = subprocess.Popen(argv, stdout=errf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited with {self.proc.returncode}: "
                                 + (p / "stderr.log").read_text(errors="replace")[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    log(f"nginx up: pid {self.proc.pid}, :{self.port}")
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError("nginx did not start listening")

    def stop(self):
        if self.proc is None:
            return
        kids = descendant_pids(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if not wait_gone(kids, 10):
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None


# --------------------------------------------------------------------------- HTTP client


SEND_CHUNK = 4 << 20


class PutClient:
    """PUTs a byte range of a file over a kept-alive connection, in 4 MiB pread + sendall
    steps from the page-cached input.

    (socket.sendfile looked cheaper but, on a socket with a timeout, Python drives it
    through a poll loop that sends a socket buffer at a time: it halved nginx's PUT
    throughput here. Large blocking sends keep the client cheap next to the server.)
    """

    def __init__(self, path):
        self.f = open(path, "rb")
        self.conns = {}

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()
        self.f.close()

    def put(self, url, offset, length, ok=(200,)):
        u = urlsplit(url)
        conn = self.conns.get(u.netloc)
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=HTTP_TIMEOUT)
            self.conns[u.netloc] = conn
        target = u.path + ("?" + u.query if u.query else "")
        try:
            conn.putrequest("PUT", target, skip_accept_encoding=True)
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            pos, end = offset, offset + length
            while pos < end:
                chunk = os.pread(self.f.fileno(), min(SEND_CHUNK, end - pos), pos)
                if not chunk:
                    raise BenchError(f"input ended at {pos} of {end}")
                conn.sock.sendall(chunk)
                pos += len(chunk)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self.conns.pop(u.netloc, None)
            raise BenchError(f"PUT {u.path}: {e!r}") from e
        if resp.will_close:
            conn.close()
            self.conns.pop(u.netloc, None)
        if resp.status not in ok:
            raise BenchError(f"PUT {u.path}: {resp.status} {body[:300]!r}")
        return resp


def curl_get(url, headers=(), timeout=600):
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    r = run(argv, timeout)
    if r.returncode != 0:
        raise BenchError(f"curl {url}: exit {r.returncode} {r.stderr}")
    code, size, secs = r.stdout.split()
    return int(code), int(size), float(secs)


# --------------------------------------------------------------------------- benchmark 1


def find_sha256(obj):
    """The 64-hex value under a key mentioning sha256 or hash in the complete response."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if (("sha256" in k.lower() or "hash" in k.lower()) and isinstance(v, str)
                    and re.fullmatch(r"(sha256:)?[0-9a-f]{64}", v)):
                return v.removeprefix("sha256:")
            found = find_sha256(v)
            if found:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_sha256(v)
            if found:
                return found
    return None


def wait_asset(srv, asset_id, done, what, timeout=HTTP_TIMEOUT, interval=0.002):
    """The asset once done(asset) is true; BenchError if its ingest fails first or timeout
    seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        r = srv.api("GET", f"/api/v1/assets/{asset_id}")
        if r.status_code != 200:
            raise BenchError(f"GET asset: {r.status_code} {r.text[:500]}")
        asset = r.json()
        if done(asset):
            return asset
        if asset.get("status") == "failed":
            raise BenchError(f"the ingest failed before {what}: {asset.get('failure_reason')}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def wait_master(srv, asset_id):
    """The asset once its ingest recorded the master (complete answers 202 at once)."""
    return wait_asset(srv, asset_id, lambda a: a.get("content_hash"), "the master recorded")


def acervo_upload(srv, path, size, digest):
    t0 = time.monotonic()
    r = srv.api("POST", "/api/v1/assets", json={"filename": "bench.bin", "size": size,
                                                "mime_type": "video/mp4", "title": "bench"})
    if r.status_code != 201:
        raise BenchError(f"POST /api/v1/assets: {r.status_code} {r.text[:500]}")
    created = r.json()
    part_size = int(created["partSize"])
    parts = created["parts"]
    if int(created.get("partCount", len(parts))) != len(parts):
        raise BenchError("partCount does not match the parts list")
    t_created = time.monotonic()

    pending = queue.Queue()
    for p in parts:
        pending.put(p)
    etags, errors, lock = {}, [], threading.Lock()

    def worker():
        client = PutClient(path)
        try:
            while not errors:
                try:
                    p = pending.get_nowait()
                except queue.Empty:
                    return
                n = int(p["partNumber"])
                off = (n - 1) * part_size
                length = min(part_size, size - off)
                resp = client.put(p["url"], off, length)
                etag = resp.getheader("ETag")
                if not etag:
                    raise BenchError(f"part {n}: 200 without an ETag")
                with lock:
                    etags[n] = etag
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(UPLOAD_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT)
        if t.is_alive():
            errors.append(BenchError("part upload thread did not finish"))
    if errors:
        raise BenchError(f"part upload failed: {errors[0]}")
    t_parts = time.monotonic()

    body = {"parts": [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]}
    r = srv.api("POST", f"/api/v1/assets/{created['assetId']}/complete", json=body)
    t_accepted = time.monotonic()
    if r.status_code != 202:
        raise BenchError(f"complete: {r.status_code} {r.text[:500]}")
    # complete answers 202 at once; the ingest workflow assembles, hashes and records the
    # master: the upload is done when the master is recorded (timed)
    asset = wait_master(srv, created["assetId"])
    t_done = time.monotonic()
    got = asset["content_hash"]
    if got != digest:
        raise BenchError(f"the ingest recorded sha256 {got}, the file has {digest}")
    return {"asset_id": created["assetId"], "parts": len(parts), "part_size": part_size,
            "secs": t_done - t0, "create_s": t_created - t0, "parts_s": t_parts - t_created,
            "complete_s": t_done - t_parts, "accept_s": t_accepted - t_parts,
            "sha256_checked": True}


def nginx_put_curl(ngx, path, size):
    target = ngx.prefix / "www/up/bench.bin"
    target.unlink(missing_ok=True)
    url = f"{ngx.base}/up/bench.bin"
    t0 = time.monotonic()
    r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(path), url],
            HTTP_TIMEOUT)
    secs = time.monotonic() - t0
    if r.returncode != 0 or r.stdout.strip() not in ("201", "204"):
        raise BenchError(f"nginx PUT (curl): exit {r.returncode} status {r.stdout} {r.stderr}")
    if target.stat().st_size != size:
        raise BenchError("nginx PUT stored the wrong size")
    return secs


def nginx_put_python(ngx, path, size):
    target = ngx.prefix / "www/up/bench.bin"
    target.unlink(missing_ok=True)
    client = PutClient(path)
    try:
        t0 = time.monotonic()
        client.put(f"{ngx.base}/up/bench.bin", 0, size, ok=(201, 204))
        secs = time.monotonic() - t0
    finally:
        client.close()
    if target.stat().st_size != size:
        raise BenchError("nginx PUT stored the wrong size")
    return secs


def stamp_run(path, run_no):
    """acervo refuses a second asset with the same content (409 duplicate), so each upload
    run gets its own first 32 bytes; both peers upload that same file in that run.
    Returns the new SHA-256 (hashing also re-warms the page cache)."""
    nonce = hashlib.sha256(f"acervo-bench {run_no} {secrets.token_hex(8)}".encode()).digest()
    with open(path, "r+b") as f:
        os.pwrite(f.fileno(), nonce, 0)
    return sha256_file(path)


def bench_upload(srv, ngx, sampler, path, size, runs):
    acervo, ng_curl, ng_sf, cpu = [], [], [], {}
    sampler.reset()
    for i in range(runs):
        digest = stamp_run(path, i + 1)
        # alternate who goes first, so neither peer always inherits the other's write-back
        order = ["acervo", "curl", "python"] if i % 2 == 0 else ["curl", "python", "acervo"]
        log(f"upload run {i + 1}/{runs}, order {' / '.join(order)} (sync before each)")
        for who in order:
            os.sync()
            srv_pids = [srv.proc.pid, *descendant_pids(srv.proc.pid)]
            ngx_pids = [ngx.proc.pid, *descendant_pids(ngx.proc.pid)]
            c0, s0, n0 = self_cpu(), cpu_seconds(srv_pids), cpu_seconds(ngx_pids)
            if who == "acervo":
                res = acervo_upload(srv, path, size, digest)
                acervo.append(res)
                secs = res["secs"]
                log(f"  acervo {size / secs / MB:8.1f} MB/s  total {secs:.2f} s = "
                    f"create {res['create_s']:.3f} + parts {res['parts_s']:.2f} + complete "
                    f"{res['complete_s']:.2f}")
            elif who == "curl":
                secs = nginx_put_curl(ngx, path, size)
                ng_curl.append(secs)
                log(f"  nginx  {size / secs / MB:8.1f} MB/s  (curl -T, {secs:.2f} s)")
            else:
                secs = nginx_put_python(ngx, path, size)
                ng_sf.append(secs)
                log(f"  nginx  {size / secs / MB:8.1f} MB/s  (python client, {secs:.2f} s)")
            c1, s1, n1 = self_cpu(), cpu_seconds(srv_pids), cpu_seconds(ngx_pids)
            client = (c1[0] - c0[0]) + (c1[1] - c0[1])
            server = (s1 - s0) if who == "acervo" else (n1 - n0)
            name = {"acervo": "acervo", "curl": "nginx/curl", "python": "nginx/python"}[who]
            cpu.setdefault(name, []).append(
                f"server {server:.2f} + client {client:.2f} [{secs:.2f}]")
            log(f"         CPU: server {server:.2f} s, client {client:.2f} s, wall {secs:.2f} s")
    rss = sampler.snapshot()  # covers the upload runs only
    os.sync()
    best = min(acervo, key=lambda r: r["secs"])
    nginx_secs = min(ng_curl + ng_sf)
    return {"acervo_mbs": size / best["secs"] / MB, "nginx_mbs": size / nginx_secs / MB,
            "nginx_client": "curl -T" if min(ng_curl) <= min(ng_sf) else "python client",
            "nginx_curl_mbs": [size / s / MB for s in ng_curl],
            "nginx_python_mbs": [size / s / MB for s in ng_sf],
            "acervo_runs": acervo, "best": best, "rss": rss,
            "last_asset": acervo[-1]["asset_id"],
            "cpu": {k: ", ".join(v) for k, v in cpu.items()}}


# --------------------------------------------------------------------------- benchmark 2


def bench_download(srv, ngx, asset_id, size, runs):
    a_url = f"{srv.base}/api/v1/assets/{asset_id}/download"
    a_hdr = [f"Authorization: Bearer {srv.token}"]
    n_url = f"{ngx.base}/up/bench.bin"
    os.sync()
    # Warm-up: one untimed GET each, so both read the same way from the page cache.
    for url, hdr in ((a_url, a_hdr), (n_url, [])):
        code, got, _ = curl_get(url, hdr)
        if code != 200 or got != size:
            raise BenchError(f"GET {url}: status {code}, {got} bytes (wanted {size})")
    a, n = [], []
    for i in range(runs):
        for url, hdr, out, name in ((a_url, a_hdr, a, "acervo"), (n_url, [], n, "nginx")):
            code, got, secs = curl_get(url, hdr)
            if code != 200 or got != size:
                raise BenchError(f"GET {url}: status {code}, {got} bytes (wanted {size})")
            out.append(size / secs / MB)
            log(f"download run {i + 1}/{runs}: {name:6} {out[-1]:8.1f} MB/s ({secs:.2f} s)")
    return {"acervo_mbs": max(a), "nginx_mbs": max(n), "acervo_runs": a, "nginx_runs": n,
            "acervo_median": statistics.median(a), "nginx_median": statistics.median(n)}


# --------------------------------------------------------------------------- benchmark 3


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise BenchError("no Requests/sec in wrk output:\n" + out)
    rps = float(m.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sockerr = re.search(r"Socket errors:\s*connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    total = re.search(r"(\d+) requests in", out)
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    return {"rps": rps, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": [int(x) for x in sockerr.groups()] if sockerr else [0, 0, 0, 0],
            "requests": int(total.group(1)) if total else None,
            "lat_avg": lat.group(1) if lat else "?", "lat_p99": p99.group(1) if p99 else "?"}


def wrk(url, duration):
    r = run(["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", url], duration + 60)
    if r.returncode != 0:
        raise BenchError(f"wrk failed ({r.returncode}): {r.stderr}\n{r.stdout}")
    res = parse_wrk(r.stdout)
    if res["non2xx"]:
        raise BenchError(f"wrk got {res['non2xx']} non-2xx responses from {url}:\n{r.stdout}")
    return res


def bench_small(srv, ngx, small_path, duration):
    data = small_path.read_bytes()
    r = srv.api("POST", "/api/v1/assets/direct",
                params={"filename": "small.bin", "mime_type": "image/jpeg"}, data=data,
                headers={"Content-Type": "application/octet-stream"})
    if r.status_code != 202:
        raise BenchError(f"direct upload: {r.status_code} {r.text[:500]}")
    asset_id = r.json()["id"]
    wait_master(srv, asset_id)
    r = srv.api("GET", f"/api/v1/assets/{asset_id}/download", params={"mode": "url"})
    if r.status_code != 200:
        raise BenchError(f"download?mode=url: {r.status_code} {r.text[:500]}")
    url = r.json()["url"]
    if not url.startswith(f"http://127.0.0.1:{srv.s3_port}/"):
        raise BenchError(f"presigned URL {url} is not on the S3 port {srv.s3_port}")
    got = requests.get(url, timeout=30)
    if got.status_code != 200 or got.content != data:
        raise BenchError(f"presigned GET: {got.status_code}, {len(got.content)} bytes")
    # The signature really is checked: the same URL with a flipped signature is refused.
    parts = urlsplit(url)
    q = parse_qsl(parts.query, keep_blank_values=True)
    q = [(k, (("0" if v[:1] != "0" else "1") + v[1:]) if k == "X-Amz-Signature" else v)
         for k, v in q]
    bad = requests.get(urlunsplit(parts._replace(query=urlencode(q))), timeout=30)
    if bad.status_code != 403:
        raise BenchError(f"tampered presigned URL answered {bad.status_code}, expected 403")
    shutil.copyfile(small_path, ngx.prefix / "www/small.bin")
    n_url = f"{ngx.base}/small.bin"
    got = requests.get(n_url, timeout=30)
    if got.status_code != 200 or got.content != data:
        raise BenchError(f"nginx small GET: {got.status_code}")
    log(f"wrk -t2 -c64 -d{duration}s: nginx {n_url}")
    n = wrk(n_url, duration)
    log(f"  nginx  {n['rps']:10.0f} req/s (avg {n['lat_avg']}, p99 {n['lat_p99']})")
    log(f"wrk -t2 -c64 -d{duration}s: acervo presigned S3 GET")
    a = wrk(url, duration)
    log(f"  acervo {a['rps']:10.0f} req/s (avg {a['lat_avg']}, p99 {a['lat_p99']})")
    return {"acervo_rps": a["rps"], "nginx_rps": n["rps"], "acervo": a, "nginx": n}


# --------------------------------------------------------------------------- report


def verdict(ok):
    return "PASS" if ok else "FAIL"


def report(info, size, args, up, down, small):
    rows = []
    ratio = up["acervo_mbs"] / up["nginx_mbs"]
    rows.append(("1. upload (multipart 16 MiB x4 → master recorded) vs nginx PUT",
                 f"{up['acervo_mbs']:.1f} MB/s", f"{up['nginx_mbs']:.1f} MB/s", f"{ratio:.2f}x",
                 f">= {TARGETS['upload']}x", verdict(ratio >= TARGETS["upload"])))
    ratio = down["acervo_mbs"] / down["nginx_mbs"]
    rows.append((f"2. download (curl, best of {args.download_runs})",
                 f"{down['acervo_mbs']:.1f} MB/s", f"{down['nginx_mbs']:.1f} MB/s",
                 f"{ratio:.2f}x", f">= {TARGETS['download']}x",
                 verdict(ratio >= TARGETS["download"])))
    ratio = small["acervo_rps"] / small["nginx_rps"]
    rows.append((f"3. 20 KiB GET, wrk -t2 -c64 -d{args.wrk_seconds}s (presigned S3 URL)",
                 f"{small['acervo_rps']:.0f} req/s", f"{small['nginx_rps']:.0f} req/s",
                 f"{ratio:.2f}x", f">= {TARGETS['small']}x", verdict(ratio >= TARGETS["small"])))
    rss = up["rss"]
    api_mib = rss["peak_api_kib"] / KIB
    rows.append(("4. peak RSS of the API process during 1", f"{api_mib:.1f} MiB", "—", "—",
                 f"< {RSS_LIMIT_MIB} MiB", verdict(api_mib < RSS_LIMIT_MIB)))

    best = up["best"]
    date = run(["date", "-u"], 10).stdout.strip()
    lines = [f"## {date} — {human_size(size)}{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
             f"work dir on {info['fs']}, kernel {info['kernel']}",
             f"- acervo: {info['commit']}, binary {info['binary']}; file size {size} bytes ({human_size(size)}), "
             f"{best['parts']} parts of {human_size(best['part_size'])}", "",
             "| benchmark | acervo | nginx | ratio | target | result |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Details:", "",
              f"- upload, best of {args.upload_runs}: total {best['secs']:.2f} s = create "
              f"{best['create_s']:.3f} s + part PUTs {best['parts_s']:.2f} s "
              f"({size / best['parts_s'] / MB:.0f} MB/s) + complete {best['complete_s']:.2f} s "
              f"(202 in {best['accept_s']:.3f} s, then the ingest's assemble step: the last of "
              f"the SHA-256 of {human_size(size)}, link, record); the recorded sha256 "
              f"matched. All acervo runs: "
              + ", ".join(f"{size / r['secs'] / MB:.0f} MB/s (parts {r['parts_s']:.2f} s, "
                          f"complete {r['complete_s']:.2f} s)" for r in up["acervo_runs"]),
              "- nginx PUT runs: curl -T "
              + ", ".join(f"{x:.0f}" for x in up["nginx_curl_mbs"]) + " MB/s; python client "
              + ", ".join(f"{x:.0f}" for x in up["nginx_python_mbs"])
              + f" MB/s (the ratio uses the fastest nginx run: {up['nginx_client']})",
              "- CPU seconds per upload (user+sys; wall in brackets): "
              + "; ".join(f"{k} {v}" for k, v in up["cpu"].items()),
              f"- RSS peaks during 1 (sampled every 100 ms, {rss['samples']} samples): API "
              f"process {api_mib:.1f} MiB, supervisor {rss['peak_supervisor_kib'] / KIB:.1f} MiB, "
              f"largest other process (a worker, or the acervo-probe child of the ingest) "
              f"{rss['peak_other_kib'] / KIB:.1f} MiB, sum {rss['peak_sum_kib'] / KIB:.1f} MiB",
              "- download runs (MB/s): acervo " + ", ".join(f"{x:.0f}" for x in down["acervo_runs"])
              + f" (median {down['acervo_median']:.0f}); nginx "
              + ", ".join(f"{x:.0f}" for x in down["nginx_runs"])
              + f" (median {down['nginx_median']:.0f})",
              f"- wrk latency avg/p99: acervo {small['acervo']['lat_avg']}/"
              f"{small['acervo']['lat_p99']}, nginx {small['nginx']['lat_avg']}/"
              f"{small['nginx']['lat_p99']}; socket errors (connect, read, write, timeout): "
              f"acervo {small['acervo']['socket_errors']}, nginx {small['nginx']['socket_errors']}",
              ""]
    return "\n".join(lines), all(r[-1] == "PASS" for r in rows)


RESULTS_HEADER = """# acervo benchmark results

Appended by `bench/run` (`make bench`) after each complete run; see bench/README.md for
what each benchmark measures and its caveats (notably: 2-core machine shared by the client,
acervod and nginx). MB/s is 10^6 bytes per second; RSS is in MiB.
"""


def publish(text, ok, no_record):
    """Prints a suite's report, appends it to RESULTS.md unless no_record; the exit status
    (0 every target met, 1 a target missed)."""
    print()
    print(text)
    if no_record:
        log("--no-record: RESULTS.md left alone")
    else:
        append_results(text)
    return 0 if ok else 1


def append_results(text):
    path = HERE / "RESULTS.md"
    if not path.exists():
        path.write_text(RESULTS_HEADER)
    with open(path, "a") as f:
        f.write("\n" + text)
    log(f"appended to {path}")


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("2G"),
                    help="size of the big file (default 2G)")
    ap.add_argument("--quick", action="store_true", help="a fast check: --size 256M")
    ap.add_argument("--upload-runs", type=int, default=3,
                    help="upload runs per peer, best kept (default 3)")
    ap.add_argument("--download-runs", type=int, default=3,
                    help="download runs per peer, best kept (default 3)")
    ap.add_argument("--wrk-seconds", type=int, default=10, help="wrk duration (default 10)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true",
                    help="keep the acervod data dir and nginx prefix under bench/work/run")
    ap.add_argument("--acervod", default=os.environ.get("ACERVOD", str(REPO / "build/acervod")),
                    help="acervod binary (default build/acervod, or $ACERVOD)")
    args = ap.parse_args()
    if args.quick:
        args.size = parse_size("256M")
    for name in ("upload_runs", "download_runs", "wrk_seconds"):
        if not 1 <= getattr(args, name) <= 100:
            ap.error(f"--{name.replace('_', '-')} must be in 1..100")

    binary = Path(args.acervod)
    for tool in ("curl", "wrk", "openssl", "head"):
        if not shutil.which(tool):
            log(f"{tool} not installed")
            return 2
    started = begin("run", (binary,), "run `make build`")
    if not started:
        return 2
    work, rundir, info = started
    info["binary"] = binary_info(binary)
    log(f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['ram']}, {info['fs']}; "
        f"acervo {info['commit']}, {info['binary']}")

    size = args.size
    big = work / f"input-{size}.bin"
    small = work / "small-20k.bin"
    make_input(big, size)
    if not small.exists() or small.stat().st_size != SMALL_SIZE:
        small.write_bytes(os.urandom(SMALL_SIZE))

    srv = Acervod(binary, rundir / "acervo-data", rundir / "acervod.log")
    ngx = Nginx(rundir / "nginx")
    sampler = None
    try:
        srv.start()
        ngx.start()
        sampler = RssSampler(srv.proc.pid, srv.port)
        sampler.start()
        up = bench_upload(srv, ngx, sampler, big, size, args.upload_runs)
        # the last run's asset holds exactly the bytes nginx stored last
        down = bench_download(srv, ngx, up["last_asset"], size, args.download_runs)
        sm = bench_small(srv, ngx, small, args.wrk_seconds)
    except BenchError as e:
        log(f"ERROR: {e}")
        if srv.proc is not None:
            log("acervod log tail:\n" + srv.log_tail())
        return 2
    finally:
        if sampler is not None:
            sampler.stop()
        srv.stop()
        ngx.stop()
        if not args.keep and rundir.exists():
            shutil.rmtree(rundir, ignore_errors=True)

    text, all_pass = report(info, size, args, up, down, sm)
    return publish(text, all_pass, args.no_record)


if __name__ == "__main__":
    sys.exit(main())
