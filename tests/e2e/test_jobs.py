"""The workflow engine end to end: real worker processes, real child processes, kill -9.

Diagnostic workflows (diagnostic.noop/.sleep/.fail/.fanout/.delayed) are started through
POST /api/v1/workflows on servers with diagnostics on; what the engine did is read back
through the API and, where the question is "exactly once", from the catalog itself.
"""

import datetime
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import Api, acervod_path, clean_env, descendant_pids, free_port, pid_alive, wait_until

pytestmark = pytest.mark.local

DIAG = {"ACERVO_DIAGNOSTICS": "1"}
TERMINAL = ("completed", "failed", "cancelled")


def diag_server(fresh_server, **env):
    return fresh_server(env={**DIAG, **env})


def start(api, token, type_, input=None, priority=0, key=None):
    headers = {"Idempotency-Key": key} if key else None
    r = api("POST", "/api/v1/workflows", token,
            json={"type": type_, "input": input or {}, "priority": priority}, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def get(api, token, wf_id):
    r = api("GET", f"/api/v1/workflows/{wf_id}", token)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(api, token, wf_id, statuses=TERMINAL, timeout=30):
    def done():
        wf = get(api, token, wf_id)
        return wf if wf["status"] in statuses else None
    return wait_until(done, timeout, interval=0.05, what=f"workflow {wf_id} in {statuses}")


def events(wf, type_=None):
    return [e for e in wf["history"] if type_ is None or e["type"] == type_]


def ms(text):
    """Milliseconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def ts(e):
    return ms(e["ts"])


def db(srv):
    return sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)


def worker_pids(srv):
    """Live worker processes, as they registered themselves in the catalog."""
    with db(srv) as c:
        pids = [p for (p,) in c.execute("SELECT pid FROM workers")]
    return [p for p in pids if pid_alive(p) and p in descendant_pids(srv.pid)]


def owner_pid(owner):
    return int(owner.split("/")[1])


def running_job(api, token, wf_id, timeout=15):
    def started():
        wf = get(api, token, wf_id)
        acts = [a for a in wf["activities"] if a["status"] == "leased"]
        return acts[0] if acts else None
    return wait_until(started, timeout, what=f"a running job of {wf_id}")


def sleep_children(pid):
    kids = []
    for kid in descendant_pids(pid):
        try:
            if Path(f"/proc/{kid}/cmdline").read_bytes().startswith(b"/bin/sleep"):
                kids.append(kid)
        except OSError:
            pass
    return kids


# --------------------------------------------------------------------------- crashes


def test_kill9_worker_mid_activity_retries_once_and_restarts(fresh_server, tmp_path):
    srv = diag_server(fresh_server, ACERVO_JOB_LEASE="2s")
    api = Api(srv.base_url, srv.s3_url)
    marker = tmp_path / "marker"
    wf_id = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 2, "marker": str(marker)})
    job = running_job(api, srv.admin_token, wf_id)
    victim = owner_pid(job["lease_owner"])
    assert victim in descendant_pids(srv.pid)
    child = wait_until(lambda: sleep_children(victim), 5, what="the activity's sleep child")
    os.kill(victim, signal.SIGKILL)
    # the worker's child dies with it, and the supervisor starts a new worker
    wait_until(lambda: not any(pid_alive(p) for p in child), 5, what="the orphaned child to die")
    wait_until(lambda: any(p != victim for p in worker_pids(srv)), 10, what="a new worker")

    wf = wait_status(api, srv.admin_token, wf_id, timeout=40)
    assert wf["status"] == "completed", wf
    started = events(wf, "job.started")
    assert [e["attempt"] for e in started] == [1, 2], started
    assert owner_pid(started[0]["worker"]) == victim
    assert owner_pid(started[1]["worker"]) != victim
    assert len(events(wf, "job.lease_expired")) == 1
    assert len(events(wf, "job.completed")) == 1
    # the retry came after the lease ran out, not before
    assert ts(started[1]) >= ts(events(wf, "job.lease_expired")[0])
    # the side effect happened once, by the attempt that finished
    lines = marker.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("attempt 2"), lines
    assert "restarting worker process 0" in srv.log_text()


def test_heartbeats_carry_progress_and_keep_the_lease(fresh_server):
    """A job running longer than its lease keeps it through heartbeats, which also bring
    its progress to the API."""
    srv = diag_server(fresh_server, ACERVO_JOB_LEASE="1s")  # heartbeat every 100 ms
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 8})
    job = running_job(api, srv.admin_token, wf_id)

    def reported():
        a = get(api, srv.admin_token, wf_id)["activities"][0]
        return a if a["progress_detail"] == "sleeping" else None
    first = wait_until(reported, 6, what="the activity's progress")
    assert first["progress"] == 0
    time.sleep(1.2)
    later = get(api, srv.admin_token, wf_id)["activities"][0]
    assert later["status"] == "leased" and later["lease_owner"] == job["lease_owner"]
    assert ms(later["lease_until"]) > ms(first["lease_until"])
    assert ms(later["heartbeat_at"]) > ms(first["heartbeat_at"])
    wf = wait_status(api, srv.admin_token, wf_id, timeout=60)
    assert wf["status"] == "completed"
    assert len(events(wf, "job.started")) == 1 and not events(wf, "job.lease_expired")
    assert wf["activities"][0]["progress"] == 100


def test_workers_never_run_the_same_job(fresh_server):
    srv = diag_server(fresh_server, ACERVO_WORKERS="3", ACERVO_QUEUES="ingest:16")
    api = Api(srv.base_url, srv.s3_url)
    ids = [start(api, srv.admin_token, "diagnostic.noop", {"count": 500}) for _ in range(4)]
    for wf_id in ids:
        assert wait_status(api, srv.admin_token, wf_id, timeout=60)["status"] == "completed"
    with db(srv) as c:
        starts = c.execute("SELECT job_id, count(*) FROM workflow_events WHERE type = "
                           "'job.started' AND workflow_id IN (?,?,?,?) GROUP BY job_id",
                           ids).fetchall()
        done = c.execute("SELECT count(*) FROM workflow_events WHERE type = 'job.completed' "
                         "AND workflow_id IN (?,?,?,?)", ids).fetchone()[0]
        owners = c.execute("SELECT count(DISTINCT lease_owner) FROM jobs WHERE workflow_id "
                           "IN (?,?,?,?)", ids).fetchone()[0]
        states = c.execute("SELECT status, count(*) FROM jobs WHERE workflow_id IN (?,?,?,?) "
                           "GROUP BY status", ids).fetchall()
    assert len(starts) == 2000 and all(n == 1 for _, n in starts)
    assert done == 2000
    assert states == [("completed", 2000)]
    assert owners >= 2, "the three workers did not share the work"


def test_thousand_concurrent_workflows_all_finish(fresh_server):
    srv = diag_server(fresh_server, ACERVO_WORKERS="2")
    api = Api(srv.base_url, srv.s3_url)
    ids, lock = [], threading.Lock()

    def starter(n):
        s = requests.Session()
        for _ in range(n):
            r = s.post(srv.base_url + "/api/v1/workflows",
                       headers={"Authorization": f"Bearer {srv.admin_token}"},
                       json={"type": "diagnostic.fanout", "input": {"count": 2}}, timeout=60)
            assert r.status_code == 201, r.text
            with lock:
                ids.append(r.json()["id"])

    threads = [threading.Thread(target=starter, args=(125,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1000

    def all_done():
        with db(srv) as c:
            return c.execute("SELECT count(*) FROM workflows WHERE type = 'diagnostic.fanout' "
                             "AND status = 'completed'").fetchone()[0] == 1000
    wait_until(all_done, 120, interval=0.5, what="1000 workflows to complete")
    with db(srv) as c:
        bad = c.execute("SELECT count(*) FROM workflows WHERE status <> 'completed'").fetchone()
        per_wf = c.execute("SELECT count(*) FROM jobs GROUP BY workflow_id").fetchall()
        joins = c.execute("SELECT output FROM jobs WHERE step = 'join'").fetchall()
    assert bad == (0,)
    assert {n for (n,) in per_wf} == {4}  # split, 2 x work, join
    assert len(joins) == 1000 and all(o == '{"joined":2}' for (o,) in joins)


def test_sigterm_hands_running_work_back_and_it_runs_after_restart(fresh_server):
    srv = diag_server(fresh_server, ACERVO_SHUTDOWN_GRACE="1s")
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 3})
    job = running_job(api, srv.admin_token, wf_id)
    kids = wait_until(lambda: sleep_children(owner_pid(job["lease_owner"])), 5,
                      what="the sleep child")
    # a clean exit (a stop that needed SIGKILL would not be 0), the job handed back (below)
    assert srv.stop(timeout=60) == 0
    assert not any(pid_alive(k) for k in kids)
    with db(srv) as c:
        status, error = c.execute("SELECT status, error_class FROM jobs WHERE workflow_id = ?",
                                  (wf_id,)).fetchone()
    assert (status, error) == ("ready", "handed_back")
    srv.start()
    wf = wait_status(api, srv.admin_token, wf_id, timeout=20)
    assert wf["status"] == "completed"
    types = [e["type"] for e in wf["history"]]
    assert types.count("job.handed_back") == 1 and types.count("job.completed") == 1
    assert [e["attempt"] for e in events(wf, "job.started")] == [1, 2]


# --------------------------------------------------------------------------- retries


def test_retry_backoff_timing(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.fail", {"error": "io", "succeed_on": 3})
    wf = wait_status(api, srv.admin_token, wf_id, timeout=20)
    assert wf["status"] == "completed", wf
    started = events(wf, "job.started")
    assert [e["attempt"] for e in started] == [1, 2, 3]
    retries = events(wf, "job.retry_scheduled")
    assert len(retries) == 2 and all("retryable" in r["detail"]["error"] for r in retries)
    gap1 = ts(started[1]) - ts(started[0])
    gap2 = ts(started[2]) - ts(started[1])
    # default policy: 1 s, then x2 (never sooner; how much later depends on the machine)
    assert gap1 >= 950, gap1
    assert gap2 >= 1950, gap2
    act = wf["activities"][0]
    assert act["attempt"] == 3 and act["status"] == "completed"
    assert [a["outcome"] for a in act["attempts"]] == ["retry_scheduled", "retry_scheduled",
                                                       "completed"]


def test_nonretryable_failure_fails_at_once(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.fail", {"error": "invalid"})
    wf = wait_status(api, srv.admin_token, wf_id, timeout=10)
    assert wf["status"] == "failed"
    assert len(events(wf, "job.started")) == 1
    assert "fail failed after 1 attempt: diagnostic failure (not retryable)" in wf["error"]
    failed = events(wf, "job.failed")
    assert failed[0]["detail"]["retryable"] is False
    assert failed[0]["detail"]["error_class"] == "invalid"


def test_retries_run_out_after_five_attempts(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.fail", {"error": "io"})
    wf = wait_status(api, srv.admin_token, wf_id, timeout=120)
    assert wf["status"] == "failed"
    started = events(wf, "job.started")
    assert [e["attempt"] for e in started] == [1, 2, 3, 4, 5]
    assert "after 5 attempts" in wf["error"]
    # 1 + 2 + 4 + 8 s of backoff at least between the first and the last attempt
    assert ts(started[4]) - ts(started[0]) >= 14500


# --------------------------------------------------------------------------- cancellation


def test_cancel_kills_the_child(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 120})
    job = running_job(api, srv.admin_token, wf_id)
    kids = wait_until(lambda: sleep_children(owner_pid(job["lease_owner"])), 5,
                      what="the sleep child")
    r = api("POST", f"/api/v1/workflows/{wf_id}/cancel", srv.admin_token)
    assert r.status_code == 202, r.text
    # the child sleeps 120 s: gone well before, it was the cancel that killed it
    wait_until(lambda: not any(pid_alive(k) for k in kids), 60, interval=0.01,
               what="the child to be killed")
    wf = wait_status(api, srv.admin_token, wf_id, timeout=60)
    assert wf["status"] == "cancelled", wf
    types = [e["type"] for e in wf["history"]]
    assert types.index("workflow.cancel_requested") < types.index("job.cancelled") < \
        types.index("workflow.cancelled")
    # the worker survived and still runs work
    again = start(api, srv.admin_token, "diagnostic.noop")
    assert wait_status(api, srv.admin_token, again, timeout=10)["status"] == "completed"


def test_cancel_of_queued_work_is_immediate(fresh_server):
    srv = diag_server(fresh_server, ACERVO_QUEUES="ingest:1")
    api = Api(srv.base_url, srv.s3_url)
    blocker = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 120})
    running_job(api, srv.admin_token, blocker)
    queued = start(api, srv.admin_token, "diagnostic.noop")
    r = api("POST", f"/api/v1/workflows/{queued}/cancel", srv.admin_token)
    assert r.status_code == 202
    assert get(api, srv.admin_token, queued)["status"] == "cancelled"
    api("POST", f"/api/v1/workflows/{blocker}/cancel", srv.admin_token)
    assert wait_status(api, srv.admin_token, blocker, timeout=60)["status"] == "cancelled"


# --------------------------------------------------------------------------- scheduling


def test_fan_out_then_fan_in(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.fanout", {"count": 40})
    wf = wait_status(api, srv.admin_token, wf_id, timeout=20)
    assert wf["status"] == "completed"
    steps = {s["name"]: s for s in wf["steps"]}
    assert steps["work"]["jobs_total"] == 40 and steps["work"]["jobs_done"] == 40
    join = [a for a in wf["activities"] if a["step"] == "join"][0]
    assert join["output"] == {"joined": 40}
    work_done = [e["id"] for e in events(wf, "job.completed") if e["step"] == "work"]
    join_start = [e["id"] for e in events(wf, "job.started") if e["step"] == "join"][0]
    assert len(work_done) == 40 and max(work_done) < join_start


def test_retry_after_a_fix_reruns_only_what_failed(fresh_server, tmp_path):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    gate = tmp_path / "gate"
    wf_id = start(api, srv.admin_token, "diagnostic.gated-fanout",
                  {"count": 6, "gated": [2], "gate": str(gate)})
    wf = wait_status(api, srv.admin_token, wf_id, timeout=20)
    assert wf["status"] == "failed" and "item 2: the gate is closed" in wf["error"]
    # the siblings still finish (or are cancelled) after the failure: let them settle
    time.sleep(0.5)
    gate.write_text("open")
    r = api("POST", f"/api/v1/workflows/{wf_id}/retry", srv.admin_token)
    assert r.status_code == 202, r.text
    wf = wait_status(api, srv.admin_token, wf_id, timeout=20)
    assert wf["status"] == "completed", wf
    join = [a for a in wf["activities"] if a["step"] == "join"][0]
    assert join["output"] == {"joined": 6}
    work = {a["item"]: a for a in wf["activities"] if a["step"] == "work"}
    # the item that failed ran again; what had completed did not
    starts = {}
    for e in events(wf, "job.started"):
        starts[e["job_id"]] = starts.get(e["job_id"], 0) + 1
    assert starts[work[2]["id"]] == 2
    done_before = [a for n, a in work.items() if n != 2 and a["attempt"] == 1]
    assert all(starts[a["id"]] == 1 for a in done_before)
    assert "workflow.retried" in [e["type"] for e in wf["history"]]


def test_delayed_step_waits(fresh_server):
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.delayed")
    wf = wait_status(api, srv.admin_token, wf_id, timeout=10)
    assert wf["status"] == "completed"
    enq = ts(events(wf, "job.enqueued")[0])
    began = ts(events(wf, "job.started")[0])
    assert 1450 <= began - enq < 3000, began - enq  # (the two rows are stamped apart)


def test_priority_orders_the_backlog(fresh_server):
    srv = diag_server(fresh_server, ACERVO_QUEUES="ingest:1")
    api = Api(srv.base_url, srv.s3_url)
    blocker = start(api, srv.admin_token, "diagnostic.sleep", {"seconds": 1})
    running_job(api, srv.admin_token, blocker)
    low = [start(api, srv.admin_token, "diagnostic.noop", priority=0) for _ in range(3)]
    high = start(api, srv.admin_token, "diagnostic.noop", priority=10)
    order = []
    for wf_id in low + [high]:
        wf = wait_status(api, srv.admin_token, wf_id, timeout=15)
        order.append((events(wf, "job.started")[0]["id"], wf_id))
    order.sort()
    assert order[0][1] == high, "the high-priority job did not run first"
    assert [w for _, w in order[1:]] == low, "equal priorities did not run oldest first"


def test_interactive_queue_is_not_starved_by_batch(fresh_server):
    srv = diag_server(fresh_server, ACERVO_QUEUES="transcode:1,transcode-interactive:1")
    api = Api(srv.base_url, srv.s3_url)
    batch = [start(api, srv.admin_token, "diagnostic.sleep-transcode", {"seconds": 3})
             for _ in range(4)]
    running_job(api, srv.admin_token, batch[0])
    editor_job = start(api, srv.admin_token, "diagnostic.sleep-interactive", {"seconds": 0.1})
    wf = wait_status(api, srv.admin_token, editor_job, timeout=60)
    assert wf["status"] == "completed"
    # done while the batch backlog still waits: it did not queue behind it
    r = api("GET", "/api/v1/queues", srv.admin_token)
    q = {x["name"]: x for x in r.json()["items"]}
    assert q["transcode"]["ready"] + q["transcode"]["running"] >= 2
    for wf_id in batch:
        api("POST", f"/api/v1/workflows/{wf_id}/cancel", srv.admin_token)
    for wf_id in batch:
        wait_status(api, srv.admin_token, wf_id, timeout=10)


def test_wake_up_is_immediate(fresh_server):
    """An idle worker starts new work at once, not at a polling tick (the bench measures
    the latency; this only proves there is no multi-second poll)."""
    srv = diag_server(fresh_server)
    api = Api(srv.base_url, srv.s3_url)
    time.sleep(1.5)  # let the worker settle into its idle wait
    gaps = []
    for _ in range(10):
        wf = wait_status(api, srv.admin_token, start(api, srv.admin_token, "diagnostic.noop"))
        gaps.append(ts(events(wf, "job.started")[0]) - ts(events(wf, "job.enqueued")[0]))
        time.sleep(0.2)
    assert max(gaps) < 1000, gaps


# --------------------------------------------------------------------------- process model


def test_worker_role_runs_alone_beside_an_api_only_server(fresh_server):
    srv = diag_server(fresh_server, ACERVO_WORKERS="0")
    api = Api(srv.base_url, srv.s3_url)
    wf_id = start(api, srv.admin_token, "diagnostic.noop")
    time.sleep(0.5)
    assert get(api, srv.admin_token, wf_id)["status"] == "running"  # nobody works
    log = open(srv.data_dir / "worker.log", "ab")
    worker = subprocess.Popen(
        [str(acervod_path()), "--role", "worker", "--queues", "ingest:2", "--data-dir",
         str(srv.data_dir), "--log-format", "text", "--listen", f"127.0.0.1:{free_port()}",
         "--s3-listen", f"127.0.0.1:{free_port()}"],
        env=clean_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    log.close()
    try:
        assert wait_status(api, srv.admin_token, wf_id, timeout=15)["status"] == "completed"
        r = api("GET", "/api/v1/queues", srv.admin_token)
        q = {x["name"]: x for x in r.json()["items"]}
        assert q["ingest"]["worker_slots"] == 2 and q["transcode"]["worker_slots"] == 0
    finally:
        kids = descendant_pids(worker.pid)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
        wait_until(lambda: not any(pid_alive(p) for p in kids), 10, what="worker children")
    assert code == 0
    text = (srv.data_dir / "worker.log").read_text()
    assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text


def test_bad_queue_spec_is_refused_at_start(tmp_path):
    proc = subprocess.run([str(acervod_path()), "--data-dir", str(tmp_path), "--queues",
                           "ingest:8,render:2", "--listen", f"127.0.0.1:{free_port()}",
                           "--s3-listen", f"127.0.0.1:{free_port()}"],
                          env=clean_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "unknown queue 'render'" in proc.stdout + proc.stderr
