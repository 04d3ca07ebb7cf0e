"""A real Ceph RADOS Gateway on 127.0.0.1 for the benchmarks: one monitor, one OSD
(bluestore on a sparse file by default, as a production OSD stores objects) and one radosgw,
all under one private directory, without systemd or ceph-mgr. Debian 12's Ceph 16.2.

    rgw = CephRGW(workdir)
    rgw.start()                 # ready to serve S3 at rgw.endpoint
    key, secret = rgw.user("bench")
    ...
    rgw.stop()                  # by PID: radosgw, the OSD, the monitor last
"""
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import requests

PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common", "uuid-runtime")


class CephError(Exception):
    pass


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_range(n):
    """A run of n ports that are free now, for the daemons' messenger."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(30000)
        ok = True
        for p in range(base, base + n):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise CephError("no free port range for the Ceph daemons")


def _pid_alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class CephRGW:
    """One monitor, one OSD and one RGW, private to workdir; stopped by their PIDs."""

    def __init__(self, workdir, objectstore="bluestore", osd_bytes=16 << 30):
        self.dir = Path(workdir)
        self.objectstore = objectstore
        self.osd_bytes = osd_bytes
        self.conf = self.dir / "ceph.conf"
        self.keyring = self.dir / "keyring"
        self.mon_port = _free_port()
        self.rgw_port = _free_port()
        self.procs = {}
        self.env = dict(os.environ, CEPH_CONF=str(self.conf))

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.rgw_port}"

    def _run(self, argv, timeout=120):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise CephError(f"{' '.join(argv[:3])} failed ({r.returncode}): "
                            f"{(r.stderr or r.stdout)[-800:]}")
        return r.stdout

    def _write_conf(self, fsid):
        d = self.dir
        ms = _free_range(40)
        store = [f"osd objectstore = {self.objectstore}"]
        if self.objectstore == "memstore":
            store.append(f"memstore device bytes = {self.osd_bytes}")
        else:
            # a sparse file outside the OSD's data dir (inside it mkfs makes a self-link)
            store += [f"bluestore block path = {d / 'osd-block'}",
                      "bluestore block create = true",
                      f"bluestore block size = {self.osd_bytes}",
                      "bluestore block db create = false",
                      "bluestore block wal create = false"]
        self.conf.write_text("\n".join([
            "[global]",
            f"fsid = {fsid}",
            f"mon host = [v2:127.0.0.1:{self.mon_port}]",
            "public addr = 127.0.0.1",
            "cluster addr = 127.0.0.1",
            "ms bind msgr1 = false",
            f"ms bind port min = {ms}",
            f"ms bind port max = {ms + 39}",
            f"keyring = {self.keyring}",
            f"run dir = {d / 'run'}",
            f"pid file = {d / 'run' / '$name.pid'}",
            f"log file = {d / 'log' / '$name.log'}",
            f"admin socket = {d / 'run' / '$name.asok'}",
            f"mon data = {d / 'mon' / '$id'}",
            f"osd data = {d / 'osd' / '$id'}",
            "osd pool default size = 1",
            "osd pool default min size = 1",
            "osd pool default pg num = 8",
            "osd pool default pgp num = 8",
            "osd pool default pg autoscale mode = off",
            "osd crush chooseleaf type = 0",
            "mon allow pool size one = true",
            "mon allow pool delete = true",
            "mon warn on pool no redundancy = false",
            "paxos propose interval = 0.01",
            "paxos min wait = 0.001",
            "auth allow insecure global id reclaim = false",
            *store,
            # without tcp_nodelay beast's answers on a kept-alive connection wait ~40 ms for
            # delayed ACKs (Nagle): 22 GETs a second on one connection instead of hundreds
            f"rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port} tcp_nodelay=1",
            "rgw gc obj min wait = 10",
            "rgw gc processor period = 10",
            "rgw dns name = 127.0.0.1",
            "",
        ]))

    def start(self, timeout=120):
        for sub in ("run", "log", "mon", "osd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self._write_conf(fsid)
        kr = str(self.keyring)
        self._run(["ceph-authtool", "--create-keyring", kr, "--gen-key", "-n", "mon.",
                   "--cap", "mon", "allow *"])
        for name, caps in (("client.admin", ["mon", "allow *", "osd", "allow *", "mds",
                                             "allow *", "mgr", "allow *"]),
                           ("osd.0", ["mon", "allow profile osd", "osd", "allow *"]),
                           ("client.rgw.0", ["mon", "allow rw", "osd", "allow rwx"])):
            argv = ["ceph-authtool", kr, "--gen-key", "-n", name]
            for i in range(0, len(caps), 2):
                argv += ["--cap", caps[i], caps[i + 1]]
            self._run(argv)
        monmap = self.dir / "monmap"
        self._run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                   f"[v2:127.0.0.1:{self.mon_port}]", str(monmap)])
        self._run(["ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring", kr])
        self._daemon("mon", ["ceph-mon", "-f", "-i", "a"])
        osd_uuid = str(uuid.uuid4())
        self._run(["ceph", "osd", "new", osd_uuid, "0"], timeout=60)
        (self.dir / "osd" / "0").mkdir(exist_ok=True)
        self._run(["ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid], timeout=300)
        self._daemon("osd", ["ceph-osd", "-f", "-i", "0"])
        self._daemon("rgw", ["radosgw", "-f", "-n", "client.rgw.0"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise CephError(f"ceph {name} exited with {p.returncode}: "
                                    f"{self.log_tail(name)}")
            try:
                if requests.get(self.endpoint + "/", timeout=2).status_code in (200, 403):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise CephError(f"radosgw not ready after {timeout}s: {self.log_tail('rgw')}")

    def _daemon(self, name, argv):
        log = open(self.dir / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        log.close()

    def log_tail(self, name, n=1500):
        try:
            return (self.dir / "log" / f"{name}.out").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def user(self, uid):
        """Creates an S3 user; returns (access key, secret key)."""
        access = "RGW" + secrets.token_hex(8).upper()
        secret = secrets.token_hex(20)
        self._run(["radosgw-admin", "user", "create", f"--uid={uid}", f"--display-name={uid}",
                   f"--access-key={access}", f"--secret-key={secret}"], timeout=120)
        return access, secret

    def pids(self):
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def stop(self):
        # radosgw and the OSD first, the monitor last
        for name in ("rgw", "osd", "mon"):
            p = self.procs.get(name)
            if not p or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs.clear()
