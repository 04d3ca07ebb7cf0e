"""REST API of the workflow engine: /api/v1/workflows, its history and /api/v1/queues.

The tests drive diagnostic workflows (src/jobs/workflows/diagnostic.c) on a private
acervod started with diagnostics = 1 (its worker process runs them for real).
"""

import re
import secrets
import uuid

import pytest

from conftest import Api, Server, assert_problem, direct_upload, random_bytes, wait_until

QUEUES = ["ingest", "transcode", "transcode-interactive", "ai-enrich", "distribution"]
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUMMARY_FIELDS = {"id", "type", "status", "asset_id", "created_by", "error", "created_at",
                  "updated_at", "finished_at", "links"}
ACTIVITY_FIELDS = {"id", "step", "item", "activity", "queue", "status", "priority", "attempt",
                   "max_attempts", "progress", "progress_detail", "lease_owner", "lease_until",
                   "run_after", "error", "error_class", "idempotency_key", "cancel_requested",
                   "input", "output", "created_at", "started_at", "heartbeat_at", "finished_at",
                   "attempts"}
FINAL = ("completed", "failed", "cancelled")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def diag(request, tmp_path_factory):
    """A private acervod with diagnostic workflows enabled."""
    if request.config.getoption("--base-url"):
        pytest.skip("needs a local acervod started with diagnostics = 1")
    srv = Server(tmp_path_factory.mktemp("acervo-diag"),
                 env={"ACERVO_DIAGNOSTICS": "1"}).start()
    yield srv
    problems = srv.close()
    assert not problems, f"diagnostics acervod: {problems}\n{srv.log_tail()}"


@pytest.fixture(scope="module")
def wapi(diag):
    return Api(diag.base_url, diag.s3_url)


@pytest.fixture(scope="module")
def wadmin(diag):
    return diag.admin_token


@pytest.fixture(scope="module")
def weditor(wapi, wadmin):
    return wapi.make_key(wadmin, "editor")


@pytest.fixture(scope="module")
def wviewer(wapi, wadmin):
    return wapi.make_key(wadmin, "viewer")


# --------------------------------------------------------------------------- helpers


def start(api, token, wf_type, input=None, priority=None, key=None, expect=201):
    body = {"type": wf_type}
    if input is not None:
        body["input"] = input
    if priority is not None:
        body["priority"] = priority
    headers = {"Idempotency-Key": key} if key is not None else None
    r = api("POST", "/api/v1/workflows", token, json=body, headers=headers)
    assert r.status_code == expect, r.text
    return r.json()


def get_wf(api, token, wf_id):
    r = api("GET", f"/api/v1/workflows/{wf_id}", token)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(api, token, wf_id, statuses, timeout=10.0):
    """Polls GET /api/v1/workflows/{id} until its status is one of statuses."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    seen = {}

    def done():
        seen["wf"] = get_wf(api, token, wf_id)
        return seen["wf"]["status"] in statuses

    try:
        wait_until(done, timeout, interval=0.05, what=f"workflow {wf_id} to be {statuses}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {seen.get('wf')}") from None
    return seen["wf"]


def types_of(history):
    return [ev["type"] for ev in history]


def is_subsequence(wanted, seq):
    it = iter(seq)
    return all(any(x == w for x in it) for w in wanted)


def list_wf(api, token, **params):
    r = api("GET", "/api/v1/workflows", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def all_history(api, token, wf_id, limit=None):
    items, after = [], 0
    while True:
        params = {"after": after}
        if limit:
            params["limit"] = limit
        r = api("GET", f"/api/v1/workflows/{wf_id}/history", token, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        if page["next_after"] is None:
            return items
        assert page["next_after"] == page["items"][-1]["id"]
        after = page["next_after"]


# --------------------------------------------------------------------------- start and run


def test_noop_runs_to_completion_with_history_and_attempts(wapi, wadmin):
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "diagnostic.noop"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert SUMMARY_FIELDS <= set(created), created
    assert created["type"] == "diagnostic.noop"
    assert created["status"] in ("running", "completed")
    assert r.headers["Location"] == f"/api/v1/workflows/{created['id']}"
    assert created["links"]["self"] == r.headers["Location"]
    assert created["asset_id"] is None

    wf = wait_status(wapi, wadmin, created["id"], "completed", timeout=10)
    assert wf["error"] is None
    for f in ("created_at", "updated_at", "finished_at"):
        assert RFC3339_MS.match(wf[f]), (f, wf[f])
    assert wf["input"] == {}
    assert [(s["name"], s["status"], s["jobs_total"], s["jobs_done"]) for s in wf["steps"]] == \
        [("work", "completed", 1, 1)]
    assert wf["history_truncated"] is False and wf["activities_truncated"] is False

    history = wf["history"]
    assert is_subsequence(["workflow.started", "job.enqueued", "job.started", "job.completed",
                           "workflow.completed"], types_of(history)), types_of(history)
    ids = [ev["id"] for ev in history]
    assert ids == sorted(ids)
    for ev in history:
        assert set(ev) == {"id", "ts", "type", "job_id", "step", "attempt", "worker", "detail"}
        assert RFC3339_MS.match(ev["ts"])

    (act,) = wf["activities"]
    assert ACTIVITY_FIELDS <= set(act), act
    assert act["activity"] == "diagnostic.noop" and act["queue"] == "ingest"
    assert act["status"] == "completed" and act["attempt"] == 1
    assert act["cancel_requested"] is False
    assert act["output"] == {"n": 0}
    (att,) = act["attempts"]
    assert att["attempt"] == 1 and att["outcome"] == "completed" and att["error"] is None
    assert att["worker"]
    assert RFC3339_MS.match(att["started_at"]) and RFC3339_MS.match(att["ended_at"])
    started = [ev for ev in history if ev["type"] == "job.started"]
    assert started[0]["job_id"] == act["id"] and started[0]["worker"] == att["worker"]


def test_start_is_audited(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.noop")
    r = wapi("GET", "/api/v1/audit", wadmin, params={"target_id": wf["id"]})
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    assert [row["action"] for row in rows] == ["workflow.start"]
    assert rows[0]["target_type"] == "workflow"
    assert rows[0]["detail"]["type"] == "diagnostic.noop"


def test_priority_and_input_are_kept(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.noop", input={"count": 2}, priority=7)
    wf = wait_status(wapi, wadmin, wf["id"], "completed")
    assert wf["input"] == {"count": 2}
    assert sorted(a["item"] for a in wf["activities"]) == [0, 1]
    assert all(a["priority"] == 7 for a in wf["activities"])


def test_idempotency_key_returns_the_same_workflow(wapi, wadmin):
    key = f"e2e-{secrets.token_hex(8)}"
    first = start(wapi, wadmin, "diagnostic.noop", key=key, expect=201)
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "diagnostic.noop"},
             headers={"Idempotency-Key": key})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"]
    assert "Location" not in r.headers and r.headers["Idempotent-Replayed"] == "true"
    # the key quoted, as the draft standard writes it, is the same key
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "diagnostic.noop"},
             headers={"Idempotency-Key": f'"{key}"'})
    assert r.status_code == 200 and r.json()["id"] == first["id"], r.text
    # the key names that workflow: another type with it is a conflict, not a new start
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "diagnostic.fail"},
             headers={"Idempotency-Key": key})
    assert_problem(r, 409)
    # without the key every start is new
    assert start(wapi, wadmin, "diagnostic.noop")["id"] != first["id"]


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9"])
def test_bad_idempotency_key_is_400(wapi, wadmin, key):
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "diagnostic.noop"},
             headers={"Idempotency-Key": key.encode("utf-8")})
    body = assert_problem(r, 400)
    assert "Idempotency-Key" in body["detail"]


def test_diagnostics_disabled_is_403(fresh_server):
    srv = fresh_server()
    api = Api(srv.base_url, srv.s3_url)
    r = api("POST", "/api/v1/workflows", srv.admin_token, json={"type": "diagnostic.noop"})
    body = assert_problem(r, 403)
    assert body["detail"] == "diagnostic workflows are disabled; set diagnostics = 1"


def test_non_diagnostic_type_is_403(wapi, wadmin):
    r = wapi("POST", "/api/v1/workflows", wadmin, json={"type": "ingest"})
    if r.status_code == 400 and "unknown workflow type" in r.text:
        pytest.skip("no ingest workflow type registered in this build yet")
    body = assert_problem(r, 403)
    assert body["detail"].startswith("workflows of type ingest are started by acervo itself")


@pytest.mark.parametrize("body,detail", [
    ({"type": "diagnostic.nope"}, "unknown workflow type"),
    ({"type": "nope"}, "unknown workflow type"),
    ({}, "field 'type' is required"),
    ({"type": 5}, "field 'type' must be a string"),
    ({"type": "diagnostic.noop", "colour": "red"}, "unknown field 'colour'"),
    ({"type": "diagnostic.noop", "input": [1]}, "field 'input' must be an object"),
    ({"type": "diagnostic.noop", "input": "x"}, "field 'input' must be an object"),
    ({"type": "diagnostic.noop", "priority": 101}, "field 'priority' must be an integer"),
    ({"type": "diagnostic.noop", "priority": -101}, "field 'priority' must be an integer"),
    ({"type": "diagnostic.noop", "priority": 1.5}, "field 'priority' must be an integer"),
    ({"type": "diagnostic.noop", "priority": "1"}, "field 'priority' must be an integer"),
    ({"type": "diagnostic.noop", "input": {"count": -1}}, "input 'count'"),
])
def test_bad_start_body_is_400(wapi, wadmin, body, detail):
    r = wapi("POST", "/api/v1/workflows", wadmin, json=body)
    problem = assert_problem(r, 400)
    assert detail in problem["detail"], problem["detail"]


def test_start_body_must_be_json(wapi, wadmin):
    r = wapi("POST", "/api/v1/workflows", wadmin, data=b"{not json",
             headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "invalid JSON")
    r = wapi("POST", "/api/v1/workflows", wadmin, data=b"[]",
             headers={"Content-Type": "application/json"})
    assert_problem(r, 400)


# --------------------------------------------------------------------------- roles


def test_roles(wapi, wadmin, weditor, wviewer):
    wf = start(wapi, wadmin, "diagnostic.sleep", input={"seconds": 30})
    try:
        assert wapi("GET", "/api/v1/workflows", wviewer.token).status_code == 200
        assert wapi("GET", f"/api/v1/workflows/{wf['id']}", wviewer.token).status_code == 200
        assert wapi("GET", f"/api/v1/workflows/{wf['id']}/history",
                    wviewer.token).status_code == 200
        assert wapi("GET", "/api/v1/queues", wviewer.token).status_code == 200
        assert_problem(wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", wviewer.token), 403)
        assert_problem(wapi("POST", f"/api/v1/workflows/{wf['id']}/retry", wviewer.token), 403)
        assert_problem(wapi("POST", "/api/v1/workflows", wviewer.token,
                            json={"type": "diagnostic.noop"}), 403)
        assert_problem(wapi("POST", "/api/v1/workflows", weditor.token,
                            json={"type": "diagnostic.noop"}), 403)
        assert_problem(wapi("GET", "/api/v1/workflows"), 401)
        assert_problem(wapi("GET", "/api/v1/queues"), 401)
        r = wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", weditor.token)
        assert r.status_code == 202, r.text
    finally:
        wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", wadmin)
    wait_status(wapi, wadmin, wf["id"], "cancelled", timeout=60)


# --------------------------------------------------------------------------- listing


def test_list_filters_and_cursor_paging(wapi, wadmin):
    owner = wapi.make_key(wadmin, "admin")
    me = wapi("GET", "/api/v1/me", owner.token).json()["user_id"]
    started = [start(wapi, owner.token, "diagnostic.noop")["id"] for _ in range(5)]
    for wf_id in started:
        wait_status(wapi, owner.token, wf_id, "completed")

    # keyset pages of 2: newest first, no duplicates, no gaps
    pages, cursor = [], None
    while True:
        params = {"created_by": me, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = list_wf(wapi, owner.token, **params)
        pages.append([w["id"] for w in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["items"][-1]["id"]
        assert len(pages) < 10
    seen = [i for p in pages for i in p]
    assert [len(p) for p in pages] in ([2, 2, 1], [2, 2, 1, 0])
    assert seen == sorted(started, reverse=True)
    assert len(set(seen)) == 5

    one = list_wf(wapi, owner.token, created_by=me, limit=5)
    assert [w["id"] for w in one["items"]] == seen
    assert one["next_cursor"] == seen[-1]  # a full page: the next one may be empty
    assert list_wf(wapi, owner.token, created_by=me, cursor=seen[-1])["items"] == []
    for w in one["items"]:
        assert SUMMARY_FIELDS <= set(w)
        assert "history" not in w and "activities" not in w

    def ids(**params):
        return {w["id"] for w in list_wf(wapi, owner.token, created_by=me, **params)["items"]}

    assert ids(type="diagnostic.noop") == set(started)
    assert ids(type="diagnostic.fail") == set()
    assert ids(status="completed") == set(started)
    assert ids(status="running") == set()
    assert ids(status="failed") == set()
    assert ids(queue="ingest") == set(started)
    assert ids(queue="transcode") == set()
    assert ids(asset_id=str(uuid.uuid4())) == set()
    assert ids(type="diagnostic.noop", status="completed", queue="ingest") == set(started)


def test_list_by_queue_finds_other_queues(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.sleep-transcode", input={"seconds": 0})
    wait_status(wapi, wadmin, wf["id"], "completed")
    assert wf["id"] in {w["id"] for w in list_wf(wapi, wadmin, queue="transcode",
                                                 limit=1000)["items"]}
    assert wf["id"] not in {w["id"] for w in list_wf(wapi, wadmin, queue="ingest",
                                                     limit=1000)["items"]}


def test_list_by_asset(wapi, wadmin):
    asset = direct_upload(wapi, wadmin, random_bytes(2048), filename="wf.bin",
                          mime_type="image/jpeg")
    assert asset["links"]["workflows"] == f"/api/v1/workflows?asset_id={asset['id']}"
    page = list_wf(wapi, wadmin, asset_id=asset["id"])
    if not page["items"]:
        pytest.skip("upload completion does not start a workflow in this build yet")
    assert all(w["asset_id"] == asset["id"] for w in page["items"])
    assert all(w["links"]["asset"] == f"/api/v1/assets/{asset['id']}" for w in page["items"])


@pytest.mark.parametrize("params,detail", [
    ({"status": "done"}, "running, completed, failed, cancelling, cancelled"),
    ({"queue": "fast"}, "ingest, transcode, transcode-interactive, ai-enrich, distribution"),
    ({"cursor": "nope"}, "query parameter 'cursor'"),
    ({"cursor": ""}, "query parameter 'cursor'"),
    ({"asset_id": "nope"}, "query parameter 'asset_id'"),
    ({"created_by": "nope"}, "query parameter 'created_by'"),
    ({"limit": "0"}, "query parameter 'limit'"),
    ({"limit": "1001"}, "query parameter 'limit'"),
    ({"limit": "x"}, "query parameter 'limit'"),
    ({"type": "t" * 40}, "query parameter 'type'"),
])
def test_bad_list_query_is_400(wapi, wviewer, params, detail):
    body = assert_problem(wapi("GET", "/api/v1/workflows", wviewer.token, params=params), 400)
    assert detail in body["detail"], body["detail"]


# --------------------------------------------------------------------------- one workflow


def test_bad_and_unknown_ids(wapi, wadmin):
    for path in ("", "/history", "/cancel", "/retry"):
        method = "POST" if path in ("/cancel", "/retry") else "GET"
        body = assert_problem(wapi(method, f"/api/v1/workflows/not-a-uuid{path}", wadmin), 400)
        assert "UUID" in body["detail"]
        unknown = str(uuid.uuid4())
        body = assert_problem(wapi(method, f"/api/v1/workflows/{unknown}{path}", wadmin), 404)
        assert unknown in body["detail"]


def test_bad_history_query_is_400(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.noop")
    for params in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "1001"}):
        assert_problem(wapi("GET", f"/api/v1/workflows/{wf['id']}/history", wadmin,
                            params=params), 400)


def test_history_pages_match_the_detail(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.noop", input={"count": 5})
    wf = wait_status(wapi, wadmin, wf["id"], "completed")
    paged = all_history(wapi, wadmin, wf["id"], limit=4)
    assert paged == wf["history"]
    types = types_of(paged)
    assert types.count("job.enqueued") == 5 and types.count("job.completed") == 5
    assert types[0] == "workflow.started" and types[-1] == "workflow.completed"


def test_large_fan_out_truncates_history_and_activities(wapi, wadmin):
    wf = start(wapi, wadmin, "diagnostic.noop", input={"count": 1001})
    wf = wait_status(wapi, wadmin, wf["id"], "completed", timeout=120)
    assert wf["activities_truncated"] is True
    assert len(wf["activities"]) == 1000
    assert wf["history_truncated"] is True
    assert len(wf["history"]) == 1000
    assert wf["attempts_truncated"] is False
    # attempts come from the whole history, not only the rows shown
    for act in wf["activities"]:
        assert [(a["attempt"], a["outcome"]) for a in act["attempts"]] == [(1, "completed")]
    rest = all_history(wapi, wadmin, wf["id"])
    assert rest[:1000] == wf["history"]
    assert len(rest) > 1000
    assert types_of(rest).count("job.completed") == 1001
    assert rest[-1]["type"] == "workflow.completed"


# --------------------------------------------------------------------------- cancel and retry


def test_cancel_a_running_sleep(wapi, wadmin, weditor):
    wf = start(wapi, wadmin, "diagnostic.sleep", input={"seconds": 120})
    wait_until(lambda: get_wf(wapi, wadmin, wf["id"])["activities"][0]["status"] == "leased",
               60, what="the sleep job to run")
    r = wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", weditor.token)
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("cancelling", "cancelled")
    # cancelled, not completed: the cancel ended it, long before its 120 s
    done = wait_status(wapi, wadmin, wf["id"], "cancelled", timeout=60)
    assert done["finished_at"] is not None
    (act,) = done["activities"]
    assert act["status"] == "cancelled"
    assert act["attempts"][-1]["outcome"] == "cancelled"
    assert is_subsequence(["workflow.cancel_requested", "job.cancelled", "workflow.cancelled"],
                          types_of(done["history"]))
    r = wapi("GET", "/api/v1/audit", wadmin, params={"target_id": wf["id"]})
    assert "workflow.cancel" in [row["action"] for row in r.json()["items"]]
    # a finished workflow cannot be cancelled again
    body = assert_problem(wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", weditor.token),
                          409)
    assert "cancelled" in body["detail"]


def test_cancel_a_completed_workflow_is_409(wapi, wadmin, weditor):
    wf = start(wapi, wadmin, "diagnostic.noop")
    wait_status(wapi, wadmin, wf["id"], "completed")
    body = assert_problem(wapi("POST", f"/api/v1/workflows/{wf['id']}/cancel", weditor.token),
                          409)
    assert "completed" in body["detail"]


def test_retry_a_failed_workflow(wapi, wadmin, weditor):
    wf = start(wapi, wadmin, "diagnostic.fail", input={"error": "invalid"})
    failed = wait_status(wapi, wadmin, wf["id"], "failed", timeout=10)
    assert failed["error"] and "diagnostic failure" in failed["error"]
    (act,) = failed["activities"]
    assert act["status"] == "failed" and act["error_class"]
    assert [(a["attempt"], a["outcome"]) for a in act["attempts"]] == [(1, "failed")]
    assert "not retryable" in act["attempts"][0]["error"]
    assert is_subsequence(["job.started", "job.failed", "workflow.failed"],
                          types_of(failed["history"]))

    r = wapi("POST", f"/api/v1/workflows/{wf['id']}/retry", weditor.token)
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("running", "failed")
    wait_until(lambda: types_of(get_wf(wapi, wadmin, wf["id"])["history"])
               .count("workflow.failed") == 2, 10, what="the retried workflow to fail again")
    again = get_wf(wapi, wadmin, wf["id"])
    assert again["status"] == "failed"
    (act,) = again["activities"]
    assert act["attempt"] == 1  # the attempt counter restarted
    assert [(a["attempt"], a["outcome"]) for a in act["attempts"]] == [(1, "failed"),
                                                                       (1, "failed")]
    assert is_subsequence(["workflow.failed", "workflow.retried", "job.started", "job.failed",
                           "workflow.failed"], types_of(again["history"]))
    r = wapi("GET", "/api/v1/audit", wadmin, params={"target_id": wf["id"]})
    assert "workflow.retry" in [row["action"] for row in r.json()["items"]]


def test_retry_of_a_running_or_completed_workflow_is_409(wapi, wadmin, weditor):
    done = start(wapi, wadmin, "diagnostic.noop")
    wait_status(wapi, wadmin, done["id"], "completed")
    body = assert_problem(wapi("POST", f"/api/v1/workflows/{done['id']}/retry", weditor.token),
                          409)
    assert "only a failed or cancelled workflow can be retried" in body["detail"]
    running = start(wapi, wadmin, "diagnostic.sleep", input={"seconds": 30})
    try:
        assert_problem(wapi("POST", f"/api/v1/workflows/{running['id']}/retry", weditor.token),
                       409)
    finally:
        wapi("POST", f"/api/v1/workflows/{running['id']}/cancel", wadmin)
    wait_status(wapi, wadmin, running["id"], "cancelled", timeout=60)


def test_retryable_failure_shows_each_attempt(wapi, wadmin):
    # io failures are retried (backoff 1 s, then 2 s); succeed_on 2 ends it on attempt 2
    wf = start(wapi, wadmin, "diagnostic.fail", input={"error": "io", "succeed_on": 2})
    done = wait_status(wapi, wadmin, wf["id"], "completed", timeout=15)
    (act,) = done["activities"]
    assert [(a["attempt"], a["outcome"]) for a in act["attempts"]] == \
        [(1, "retry_scheduled"), (2, "completed")]
    assert "retryable" in act["attempts"][0]["error"]
    assert act["output"] == {"succeeded_on": 2}


# --------------------------------------------------------------------------- queues


def test_queues_lists_all_five(wapi, wviewer):
    def ingest_served():
        r = wapi("GET", "/api/v1/queues", wviewer.token)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return items if items[0]["worker_slots"] > 0 else None

    items = wait_until(ingest_served, 10, what="a worker to serve ingest")
    assert [q["name"] for q in items] == QUEUES
    for q in items:
        assert set(q) == {"name", "ready", "delayed", "running", "oldest_ready_age_ms",
                          "worker_slots"}
        for f in ("ready", "delayed", "running", "oldest_ready_age_ms", "worker_slots"):
            assert isinstance(q[f], int) and q[f] >= 0, (q["name"], f, q[f])


def test_queues_count_running_and_delayed_jobs(wapi, wadmin, wviewer):
    sleeper = start(wapi, wadmin, "diagnostic.sleep-interactive", input={"seconds": 30})
    delayed = start(wapi, wadmin, "diagnostic.delayed")
    try:
        # its job becomes runnable 1.5 s after the start: until then it is delayed
        items = {q["name"]: q for q in wapi("GET", "/api/v1/queues",
                                             wviewer.token).json()["items"]}
        assert items["ingest"]["delayed"] >= 1, items["ingest"]

        def depth():
            items = {q["name"]: q for q in wapi("GET", "/api/v1/queues",
                                                 wviewer.token).json()["items"]}
            return items if items["transcode-interactive"]["running"] >= 1 else None

        items = wait_until(depth, 10, what="the interactive sleep to run")
        assert items["transcode-interactive"]["worker_slots"] >= 1
    finally:
        wapi("POST", f"/api/v1/workflows/{sleeper['id']}/cancel", wadmin)
    wait_status(wapi, wadmin, sleeper["id"], "cancelled", timeout=60)
    wait_status(wapi, wadmin, delayed["id"], "completed", timeout=10)


# --------------------------------------------------------------------------- documents


def test_openapi_documents_the_workflow_routes(wapi):
    doc = wapi("GET", "/api/v1/openapi.json").json()
    paths = {re.sub(r"\{[^}]+\}", "{}", p): v for p, v in doc["paths"].items()}
    assert {"get", "post"} <= set(paths["/api/v1/workflows"])
    assert "get" in paths["/api/v1/workflows/{}"]
    assert "get" in paths["/api/v1/workflows/{}/history"]
    assert "post" in paths["/api/v1/workflows/{}/cancel"]
    assert "post" in paths["/api/v1/workflows/{}/retry"]
    assert "get" in paths["/api/v1/queues"]


def test_asset_json_has_technical_columns(wapi, wadmin):
    asset = direct_upload(wapi, wadmin, random_bytes(1024), filename="t.jpg",
                          mime_type="image/jpeg")
    for f in ("duration_ms", "width", "height", "video_codec", "audio_codec", "frame_rate",
              "bitrate_kbps", "container", "captured_at", "technical_metadata",
              "duplicate_of"):
        assert f in asset, f
    assert asset["duplicate_of"] is None
    assert asset["technical_metadata"] is None or isinstance(asset["technical_metadata"], dict)
    assert asset["links"]["workflows"] == f"/api/v1/workflows?asset_id={asset['id']}"
