"""REST API: health, auth, keys, the upload flow, assets, listing, audit."""

import hashlib
import re
import secrets
import threading
import time

import pytest
import requests

from conftest import (MIB, PART_SIZE, assert_problem, complete, create_asset, direct_upload,
                      get_asset, put_parts, random_bytes, sha256, upload, wait_master, wait_ingest,
                      wait_until)

ASSET_FIELDS = ("id", "type", "status", "title", "description", "original_filename",
                "mime_type", "file_size_bytes", "content_hash", "master_storage_key",
                "technical_metadata", "editorial_metadata", "tags", "failure_reason",
                "created_by", "created_at", "updated_at", "links")


# --------------------------------------------------------------------------- health


def test_healthz_is_ok(api):
    r = api("GET", "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_is_ok(api):
    assert api("GET", "/readyz").status_code == 200


def test_openapi_lists_every_endpoint(api):
    r = api("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert "openapi" in doc
    # Path templates may name the parameter differently; compare with {x} normalised.
    paths = {re.sub(r"\{[^}]+\}", "{}", p) for p in doc["paths"]}
    expected = {"/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/keys", "/api/v1/me",
                "/api/v1/assets", "/api/v1/assets/direct", "/api/v1/assets/{}",
                "/api/v1/assets/{}/complete", "/api/v1/assets/{}/upload",
                "/api/v1/assets/{}/download", "/api/v1/audit", "/api/v1/search",
                "/api/v1/search/suggest"}
    assert expected <= paths, f"missing from openapi paths: {sorted(expected - paths)}"


# --------------------------------------------------------------------------- auth


def test_missing_token_is_401_problem(api):
    assert_problem(api("GET", "/api/v1/me"), 401)


def test_unknown_token_is_401(api):
    assert_problem(api("GET", "/api/v1/me", secrets.token_hex(32)), 401)


def test_malformed_authorization_header_is_401(api, editor):
    r = api("GET", "/api/v1/me", headers={"Authorization": f"Basic {editor.token}"})
    assert_problem(r, 401)


def test_viewer_cannot_create_asset(api, viewer):
    r = api("POST", "/api/v1/assets", viewer.token,
            json={"filename": "a.mp4", "size": 10, "mime_type": "video/mp4"})
    assert_problem(r, 403)


def test_editor_cannot_create_keys(api, editor):
    assert_problem(api("POST", "/api/v1/keys", editor.token,
                       json={"role": "admin", "name": "escalate"}), 403)


def test_editor_cannot_read_audit(api, editor):
    assert_problem(api("GET", "/api/v1/audit", editor.token), 403)


# --------------------------------------------------------------------------- keys and me


def test_create_key_returns_credentials(api, admin_token):
    r = api("POST", "/api/v1/keys", admin_token, json={"role": "viewer", "name": "e2e-k"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["role"] == "viewer"
    assert body["token"] and body["s3_access_key"] and body["s3_secret_key"]


def test_create_key_with_bad_role_is_400(api, admin_token):
    assert_problem(api("POST", "/api/v1/keys", admin_token,
                       json={"role": "overlord", "name": "x"}), 400)


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_me_reports_role(api, admin_token, role):
    key = api.make_key(admin_token, role)
    r = api("GET", "/api/v1/me", key.token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == role
    assert body["user_id"] and body["key_id"]


def test_first_admin_token_is_admin(api, admin_token):
    r = api("GET", "/api/v1/me", admin_token)
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "admin"


# --------------------------------------------------------------------------- upload flow


def test_create_asset_returns_presigned_parts(api, editor):
    size = 2 * PART_SIZE + 123
    body = create_asset(api, editor.token, size, filename="three.mp4", title="Three parts")
    assert body["partSize"] == PART_SIZE
    assert body["partCount"] == 3
    assert [p["partNumber"] for p in body["parts"]] == [1, 2, 3]
    for part in body["parts"]:
        assert part["url"].startswith(api.s3_url + "/"), part["url"]
        assert "X-Amz-Signature=" in part["url"]
    assert body["uploadId"] and body["expiresAt"]
    assert body["asset"]["id"] == body["assetId"]
    assert body["asset"]["status"] == "uploading"
    assert body["asset"]["title"] == "Three parts"


def test_type_is_inferred_from_mime_type(api, editor):
    for mime, kind in (("video/mp4", "video"), ("audio/mpeg", "audio"), ("image/png", "image")):
        assert create_asset(api, editor.token, 10, mime_type=mime)["asset"]["type"] == kind


def test_a_generic_or_unknown_mime_type_is_only_a_hint(api, editor):
    # no type given: the media type or the name suggest one for now, and the ingest sets
    # the real one from the content (tests/e2e/test_ingest.py)
    for filename, mime, kind in (("x.bin", "application/octet-stream", "video"),
                                 ("master.mxf", "application/mxf", "video"),
                                 ("tone.flac", "application/octet-stream", "audio"),
                                 ("PHOTO.JPG", "application/x-unknown", "image"),
                                 ("noextension", "application/octet-stream", "video")):
        body = {"filename": filename, "size": 10, "mime_type": mime}
        r = api("POST", "/api/v1/assets", editor.token, json=body)
        assert r.status_code == 201, (filename, r.text)
        assert r.json()["asset"]["type"] == kind, filename
    created = create_asset(api, editor.token, 10, filename="x.bin",
                           mime_type="application/octet-stream", type="audio")
    assert created["asset"]["type"] == "audio"


def test_title_defaults_to_the_file_name_without_its_extension(api, editor):
    for filename, title in (("Interview 2.final.mov", "Interview 2.final"),
                            ("noext", "noext"), (".mov", ".mov"), ("año.wav", "año")):
        assert create_asset(api, editor.token, 10, filename=filename)["asset"]["title"] == title
    # a title given wins; an explicit empty title or null means none
    assert create_asset(api, editor.token, 10, filename="a.mp4",
                        title="Given")["asset"]["title"] == "Given"
    assert create_asset(api, editor.token, 10, filename="a.mp4", title="")["asset"]["title"] is None
    assert create_asset(api, editor.token, 10, filename="a.mp4",
                        title=None)["asset"]["title"] is None
    asset = direct_upload(api, editor.token, random_bytes(100), filename="Rueda de prensa.jpg")
    assert asset["title"] == "Rueda de prensa"
    asset = direct_upload(api, editor.token, random_bytes(100), filename="n.jpg", title="")
    assert asset["title"] is None


def test_multipart_upload_completes_with_hash_and_master_key(api, editor):
    data = random_bytes(2 * PART_SIZE + 4321)
    asset = upload(api, editor.token, data, filename="clip.mov", mime_type="video/quicktime")
    digest = sha256(data)
    assert asset["status"] in ("processing", "failed")  # random bytes are no QuickTime
    assert asset["content_hash"] == digest
    assert asset["file_size_bytes"] == len(data)
    assert asset["master_storage_key"] == f"masters/{asset['id']}/{digest}/original.mov"


def test_completed_master_is_readable_over_s3(api, editor, admin):
    data = random_bytes(PART_SIZE + 10)
    asset = upload(api, editor.token, data, filename="m.mp4")
    obj = api.s3(admin).get_object(Bucket="archive", Key=asset["master_storage_key"])
    assert sha256(obj["Body"].read()) == sha256(data)


def test_get_asset_has_every_field(api, editor, viewer):
    data = random_bytes(1000)
    asset = upload(api, editor.token, data, filename="fields.wav", mime_type="audio/wav",
                   title="T", description="D", tags=["a", "b"],
                   editorial_metadata={"source": "e2e"})
    got = get_asset(api, viewer.token, asset["id"])
    missing = [f for f in ASSET_FIELDS if f not in got]
    assert not missing, f"asset JSON without {missing}"
    assert got["original_filename"] == "fields.wav"
    assert got["mime_type"] == "audio/wav"
    assert got["type"] == "audio"
    assert got["title"] == "T"
    assert got["description"] == "D"
    assert sorted(got["tags"]) == ["a", "b"]
    assert got["editorial_metadata"]["source"] == "e2e"
    assert got["content_hash"] == sha256(data)


def test_get_unknown_asset_is_404(api, viewer):
    assert_problem(api("GET", "/api/v1/assets/00000000-0000-4000-8000-000000000000",
                       viewer.token), 404)


def test_upload_status_lists_received_and_missing_parts(api, editor):
    data = random_bytes(2 * PART_SIZE + 1)
    created = create_asset(api, editor.token, data)
    sent = put_parts(created, data, only={2})
    r = api("GET", f"/api/v1/assets/{created['assetId']}/upload", editor.token)
    assert r.status_code == 200, r.text
    status = r.json()
    assert [p["partNumber"] for p in status["received"]] == [2]
    assert status["received"][0]["size"] == PART_SIZE
    assert status["received"][0]["etag"].strip('"') == sent[0]["etag"].strip('"')
    assert [p["partNumber"] for p in status["missing"]] == [1, 3]
    assert all(p["url"].startswith(api.s3_url) for p in status["missing"])


def test_resumed_upload_with_fresh_urls_completes(api, editor):
    data = random_bytes(PART_SIZE + 7)
    created = create_asset(api, editor.token, data)
    first = put_parts(created, data, only={1})
    status = api("GET", f"/api/v1/assets/{created['assetId']}/upload", editor.token).json()
    resumed = put_parts({"parts": status["missing"], "partSize": created["partSize"]}, data)
    r = complete(api, editor.token, created["assetId"], first + resumed)
    assert r.status_code == 202, r.text
    assert wait_master(api, editor.token, created["assetId"])["content_hash"] == sha256(data)


def test_abort_upload_removes_asset(api, editor):
    created = create_asset(api, editor.token, 100)
    path = f"/api/v1/assets/{created['assetId']}/upload"
    assert api("DELETE", path, editor.token).status_code == 204
    assert_problem(api("GET", f"/api/v1/assets/{created['assetId']}", editor.token), 404)
    assert_problem(api("GET", path, editor.token), 404)


def test_viewer_cannot_abort_upload(api, editor, viewer):
    created = create_asset(api, editor.token, 100)
    path = f"/api/v1/assets/{created['assetId']}/upload"
    assert_problem(api("DELETE", path, viewer.token), 403)
    assert get_asset(api, editor.token, created["assetId"])["status"] == "uploading"


def test_complete_twice_is_409(api, editor):
    data = random_bytes(2000)
    created = create_asset(api, editor.token, data)
    parts = put_parts(created, data)
    assert complete(api, editor.token, created["assetId"], parts).status_code == 202
    assert_problem(complete(api, editor.token, created["assetId"], parts), 409)


def test_complete_accepts_put(api, editor):
    data = random_bytes(3000)
    created = create_asset(api, editor.token, data)
    parts = put_parts(created, data)
    r = api("PUT", f"/api/v1/assets/{created['assetId']}/complete", editor.token,
            json={"parts": parts})
    assert r.status_code == 202, r.text


def test_duplicate_content_fails_naming_the_existing_asset(api, editor):
    data = random_bytes(PART_SIZE + 99)
    first = upload(api, editor.token, data)
    created = create_asset(api, editor.token, data, filename="again.mp4")
    r = complete(api, editor.token, created["assetId"], put_parts(created, data))
    assert r.status_code == 202, r.text  # completion answers at once; the ingest dedups
    dup = wait_ingest(api, editor.token, created["assetId"])
    assert dup["status"] == "failed"
    assert dup["duplicate_of"] == first["id"]
    assert first["id"] in dup["failure_reason"] and "duplicate" in dup["failure_reason"]
    assert dup["content_hash"] is None and dup["master_storage_key"] is None
    assert get_asset(api, editor.token, first["id"])["content_hash"] == sha256(data)
    # its parts are gone and its workflow says why (the activity fails the asset, then the
    # engine ends the workflow: a moment apart)
    assert_problem(api("GET", f"/api/v1/assets/{created['assetId']}/upload", editor.token), 409)

    def workflow_ended():
        wf = api("GET", "/api/v1/workflows", editor.token,
                 params={"asset_id": created["assetId"]}).json()["items"][0]
        return wf if wf["status"] != "running" else None
    wf = wait_until(workflow_ended, 30, 0.02, "the ingest workflow to end")
    assert wf["status"] == "failed" and first["id"] in wf["error"]


def test_part_etag_is_quoted_md5(api, editor):
    data = random_bytes(1000)
    created = create_asset(api, editor.token, data)
    etag = put_parts(created, data)[0]["etag"]
    assert etag == f'"{hashlib.md5(data).hexdigest()}"'


@pytest.fixture(scope="module")
def editor2(api, admin_token):
    return api.make_key(admin_token, "editor")


def test_the_upload_routes_are_the_owners(api, editor, editor2, admin):
    data = random_bytes(PART_SIZE + 10)
    created = create_asset(api, editor.token, data)
    asset_id = created["assetId"]
    parts = put_parts(created, data)
    path = f"/api/v1/assets/{asset_id}"
    # another editor reads the asset (it is no secret) but not its upload
    assert api("GET", path, editor2.token).status_code == 200
    for method, sub, body in (("GET", "/upload", None), ("DELETE", "/upload", None),
                              ("POST", "/complete", {"parts": parts}),
                              ("PUT", "/complete", {"parts": parts})):
        r = api(method, path + sub, editor2.token, json=body)
        detail = assert_problem(r, 403)["detail"]
        assert "belongs to the user who started it" in detail, detail
    assert get_asset(api, editor.token, asset_id)["status"] == "uploading"
    # an admin may look after any upload; the owner completes it
    r = api("GET", path + "/upload", admin.token)
    assert r.status_code == 200, r.text
    assert [p["partNumber"] for p in r.json()["received"]] == [1, 2]
    r = complete(api, editor.token, asset_id, parts)
    assert r.status_code == 202, r.text


def test_an_admin_may_abort_another_users_upload(api, editor, admin):
    created = create_asset(api, editor.token, 100)
    r = api("DELETE", f"/api/v1/assets/{created['assetId']}/upload", admin.token)
    assert r.status_code == 204, r.text
    assert api("GET", f"/api/v1/assets/{created['assetId']}", editor.token).status_code == 404


def test_any_editor_may_edit_an_asset(api, editor, editor2):
    # the catalog is the newsroom's: editing is not limited to the uploader (and audited)
    asset = direct_upload(api, editor.token, random_bytes(300), filename="shared.jpg")
    r = api("PATCH", f"/api/v1/assets/{asset['id']}", editor2.token, json={"title": "Edited"})
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Edited"


def test_viewer_cannot_read_upload_status(api, editor, viewer):
    created = create_asset(api, editor.token, 100)
    assert_problem(api("GET", f"/api/v1/assets/{created['assetId']}/upload", viewer.token), 403)


def run_together(*calls):
    """Runs the callables at the same moment in threads; returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_completes_of_one_asset_commit_once(api, editor):
    data = random_bytes(PART_SIZE + 50)
    created = create_asset(api, editor.token, data)
    parts = put_parts(created, data)
    results = run_together(*[lambda: complete(api, editor.token, created["assetId"], parts)] * 2)
    assert sorted(r.status_code for r in results) == [202, 409], [r.text for r in results]
    assert wait_master(api, editor.token, created["assetId"])["content_hash"] == sha256(data)
    wfs = api("GET", "/api/v1/workflows", editor.token,
              params={"asset_id": created["assetId"]}).json()["items"]
    assert len(wfs) == 1, "two completes started two ingests"


def test_concurrent_duplicates_keep_exactly_one(api, editor):
    data = random_bytes(PART_SIZE + 60)
    uploads = []
    for name in ("race-a.mp4", "race-b.mp4"):
        created = create_asset(api, editor.token, data, filename=name)
        uploads.append((created["assetId"], put_parts(created, data)))
    results = run_together(*[lambda u=u: complete(api, editor.token, *u) for u in uploads])
    assert [r.status_code for r in results] == [202, 202], [r.text for r in results]
    ends = [wait_ingest(api, editor.token, aid) for aid, _ in uploads]
    holders = [a for a in ends if a["content_hash"] == sha256(data)]
    dups = [a for a in ends if a["duplicate_of"]]
    assert len(holders) == 1 and len(dups) == 1, ends
    assert dups[0]["duplicate_of"] == holders[0]["id"]
    assert dups[0]["status"] == "failed" and dups[0]["master_storage_key"] is None


def test_direct_upload_of_existing_content_fails_as_duplicate(api, editor):
    data = random_bytes(3000)
    first = direct_upload(api, editor.token, data)
    again = direct_upload(api, editor.token, data, filename="again.jpg")
    assert again["status"] == "failed" and again["duplicate_of"] == first["id"]


# --------------------------------------------------------------------------- idempotency keys


def create_keyed(api, token, key, body, quoted=True):
    header = f'"{key}"' if quoted else key
    return api("POST", "/api/v1/assets", token, json=body, headers={"Idempotency-Key": header})


def uploading_named(api, token, filename):
    items = api("GET", "/api/v1/assets", token,
                params={"status": "uploading", "limit": 200}).json()["items"]
    return [a["id"] for a in items if a["original_filename"] == filename]


def test_a_retried_create_with_its_key_gets_the_same_upload(api, editor):
    data = random_bytes(PART_SIZE + 300)
    key = secrets.token_hex(16)
    body = {"filename": "idem-retry.mp4", "size": len(data), "mime_type": "video/mp4",
            "title": "Retried", "tags": ["a", "b"]}
    first = create_keyed(api, editor.token, key, body)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    # the same request, its fields in another order and the key bare: a replay
    again = create_keyed(api, editor.token, key, dict(reversed(list(body.items()))),
                         quoted=False)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    a, b = first.json(), again.json()
    for field in ("assetId", "uploadId", "partSize", "partCount"):
        assert a[field] == b[field], field
    assert b["asset"]["title"] == "Retried" and b["asset"]["status"] == "uploading"
    assert [p["partNumber"] for p in b["parts"]] == [1, 2]
    assert uploading_named(api, editor.token, "idem-retry.mp4") == [a["assetId"]]
    # the replay's part URLs carry the upload through
    parts = put_parts(b, data)
    assert complete(api, editor.token, a["assetId"], parts).status_code == 202
    assert wait_master(api, editor.token, a["assetId"])["content_hash"] == sha256(data)
    # once the upload is over, the key names the asset but opens nothing new
    late = create_keyed(api, editor.token, key, body)
    problem = assert_problem(late, 409)
    assert a["assetId"] in problem["detail"] and "upload is over" in problem["detail"]
    assert late.headers["Location"] == first.headers["Location"]


def test_a_key_reused_for_another_request_is_422(api, editor):
    key = secrets.token_hex(8)
    body = {"filename": "idem-a.mp4", "size": 1000, "mime_type": "video/mp4"}
    first = create_keyed(api, editor.token, key, body)
    assert first.status_code == 201, first.text
    for change in ({"size": 1001}, {"filename": "idem-b.mp4"}, {"title": "another"}):
        problem = assert_problem(create_keyed(api, editor.token, key, {**body, **change}), 422)
        assert "different request" in problem["detail"]
        assert first.json()["assetId"] in problem["detail"]
    assert uploading_named(api, editor.token, "idem-b.mp4") == []
    assert len(uploading_named(api, editor.token, "idem-a.mp4")) == 1


def test_keys_belong_to_their_user(api, editor, admin):
    key = secrets.token_hex(8)
    body = {"filename": "idem-users.mp4", "size": 500, "mime_type": "video/mp4"}
    mine = create_keyed(api, editor.token, key, body)
    theirs = create_keyed(api, admin.token, key, body)
    assert mine.status_code == 201 and theirs.status_code == 201, (mine.text, theirs.text)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["assetId"] != theirs.json()["assetId"]


def test_concurrent_creates_with_one_key_make_one_asset(api, editor):
    key = secrets.token_hex(8)
    body = {"filename": "idem-race.mp4", "size": 3 * PART_SIZE, "mime_type": "video/mp4"}
    results = run_together(*[lambda: create_keyed(api, editor.token, key, body)] * 8)
    assert sorted(r.status_code for r in results) == [200] * 7 + [201], [r.text for r in results]
    ids = {r.json()["assetId"] for r in results}
    uploads = {r.json()["uploadId"] for r in results}
    assert len(ids) == 1 and len(uploads) == 1, (ids, uploads)
    assert sum(1 for r in results if "Idempotent-Replayed" not in r.headers) == 1
    assert uploading_named(api, editor.token, "idem-race.mp4") == list(ids)


def test_an_aborted_upload_frees_its_key(api, editor):
    key = secrets.token_hex(8)
    body = {"filename": "idem-abort.mp4", "size": 700, "mime_type": "video/mp4"}
    first = create_keyed(api, editor.token, key, body).json()
    assert api("DELETE", f"/api/v1/assets/{first['assetId']}/upload",
               editor.token).status_code == 204
    again = create_keyed(api, editor.token, key, body)
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["assetId"] != first["assetId"]


@pytest.mark.parametrize("header", [
    '""', '"' + "k" * 256 + '"', "k" * 256, '"tab\there"', '"unterminated', '"a" "b"',
    '"a", "b"', "a,b", 'bad"quote', '"bad\\q"', '"caf\u00e9"',
])
def test_malformed_idempotency_key_is_400(api, editor, header):
    body = {"filename": "idem-bad.mp4", "size": 100, "mime_type": "video/mp4"}
    r = api("POST", "/api/v1/assets", editor.token, json=body,
            headers={"Idempotency-Key": header})
    problem = assert_problem(r, 400)
    assert "Idempotency-Key" in problem["detail"]
    assert uploading_named(api, editor.token, "idem-bad.mp4") == []


def test_longest_idempotency_key_and_escapes_are_taken(api, editor):
    body = {"filename": "idem-long.mp4", "size": 100, "mime_type": "video/mp4"}
    for header in ['"' + "k" * 255 + '"', "K" * 255, '"with \\"quote\\" and \\\\"']:
        first = api("POST", "/api/v1/assets", editor.token, json=body,
                    headers={"Idempotency-Key": header})
        again = api("POST", "/api/v1/assets", editor.token, json=body,
                    headers={"Idempotency-Key": header})
        assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert first.json()["assetId"] == again.json()["assetId"]


# --------------------------------------------------------------------------- direct upload


def test_direct_upload(api, editor):
    data = random_bytes(MIB + 5)
    asset = direct_upload(api, editor.token, data, filename="d.jpg", mime_type="image/jpeg",
                          title="Direct")
    digest = sha256(data)
    assert asset["status"] in ("processing", "failed")  # random bytes are no JPEG
    assert asset["title"] == "Direct"
    assert asset["content_hash"] == digest
    assert asset["file_size_bytes"] == len(data)
    assert asset["master_storage_key"] == f"masters/{asset['id']}/{digest}/original.jpg"


def test_direct_upload_over_part_size_is_413(api, editor):
    r = api("POST", "/api/v1/assets/direct", editor.token,
            params={"filename": "big.jpg", "mime_type": "image/jpeg"},
            data=random_bytes(PART_SIZE + 1))
    assert_problem(r, 413)


def test_direct_upload_without_content_length_is_rejected(api, editor):
    def body():
        yield b"x" * 1000

    r = api("POST", "/api/v1/assets/direct", editor.token,
            params={"filename": "chunked.jpg", "mime_type": "image/jpeg"},
            data=body())
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code in (400, 411), r.text


def test_direct_upload_needs_editor(api, viewer):
    r = api("POST", "/api/v1/assets/direct", viewer.token,
            params={"filename": "v.jpg", "mime_type": "image/jpeg"},
            data=b"viewer")
    assert_problem(r, 403)


# --------------------------------------------------------------------------- patch


@pytest.fixture
def patchable(api, editor):
    return direct_upload(api, editor.token, random_bytes(500), title="Before")


def patch(api, token, asset_id, body):
    return api("PATCH", f"/api/v1/assets/{asset_id}", token, json=body)


def test_patch_updates_title_description_tags(api, editor, patchable):
    r = patch(api, editor.token, patchable["id"],
              {"title": "After", "description": "New text", "tags": ["x", "y"]})
    assert r.status_code == 200, r.text
    got = get_asset(api, editor.token, patchable["id"])
    assert got["title"] == "After"
    assert got["description"] == "New text"
    assert sorted(got["tags"]) == ["x", "y"]


def test_patch_editorial_metadata_is_a_merge_patch(api, editor, patchable):
    asset_id = patchable["id"]
    r = patch(api, editor.token, asset_id,
              {"editorial_metadata": {"a": 1, "b": {"c": 2, "d": 3}, "e": "keep"}})
    assert r.status_code == 200, r.text
    r = patch(api, editor.token, asset_id,
              {"editorial_metadata": {"a": None, "b": {"c": 20}, "f": [1, 2]}})
    assert r.status_code == 200, r.text
    got = get_asset(api, editor.token, asset_id)["editorial_metadata"]
    assert got == {"b": {"c": 20, "d": 3}, "e": "keep", "f": [1, 2]}


def test_patch_language_picks_the_stemmer_and_null_clears_it(api, editor, patchable):
    assert patchable["language"] is None and patchable["ai_metadata"] == {}
    r = patch(api, editor.token, patchable["id"], {"language": "es-ES", "title": "Con idioma"})
    assert r.status_code == 200, r.text
    assert (r.json()["language"], r.json()["title"]) == ("es-ES", "Con idioma")
    got = get_asset(api, editor.token, patchable["id"])
    assert got["language"] == "es-ES"
    r = patch(api, editor.token, patchable["id"], {"language": None})
    assert r.status_code == 200 and r.json()["language"] is None


def test_patch_changes_updated_at(api, editor, patchable):
    time.sleep(1.1)  # timestamps may have one-second resolution
    r = patch(api, editor.token, patchable["id"], {"title": "Later"})
    assert r.status_code == 200, r.text
    got = get_asset(api, editor.token, patchable["id"])
    assert got["updated_at"] != patchable["updated_at"]
    assert got["created_at"] == patchable["created_at"]


@pytest.mark.parametrize("body", [
    {"colour": "red"},
    {"title": "ok", "status": "ready"},
    {"title": 42},
    {"tags": "not-a-list"},
    {"tags": [1, 2]},
    {"editorial_metadata": "flat"},
    {"title": "x" * 100_000},
    {"title": "ok", "language": "Spanish"},
    {"language": "es-"},
    {"language": 5},
    {"language": "es-ES-valencia-x"},
], ids=["unknown-field", "read-only-field", "title-int", "tags-string", "tags-ints",
        "metadata-string", "title-too-long", "language-name", "language-dash", "language-int",
        "language-too-long"])
def test_bad_patch_is_400_and_changes_nothing(api, editor, patchable, body):
    before = get_asset(api, editor.token, patchable["id"])
    assert_problem(patch(api, editor.token, patchable["id"], body), 400)
    assert get_asset(api, editor.token, patchable["id"]) == before


def test_viewer_cannot_patch(api, viewer, editor, patchable):
    assert_problem(patch(api, viewer.token, patchable["id"], {"title": "nope"}), 403)
    assert get_asset(api, editor.token, patchable["id"])["title"] == "Before"


def test_patch_unknown_asset_is_404(api, editor):
    assert_problem(patch(api, editor.token, "00000000-0000-4000-8000-000000000000",
                         {"title": "x"}), 404)


# --------------------------------------------------------------------------- listing


def list_all(api, token, **params):
    """Walks every page; returns (items, pages)."""
    items, pages, cursor = [], 0, None
    while True:
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        r = api("GET", "/api/v1/assets", token, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        pages += 1
        cursor = body.get("next_cursor")
        if not cursor:
            return items, pages
        assert pages < 10_000, "pagination does not terminate"


def test_list_is_newest_first(api, editor, viewer):
    ids = [direct_upload(api, editor.token, random_bytes(100))["id"] for _ in range(3)]
    r = api("GET", "/api/v1/assets", viewer.token, params={"limit": 3})
    assert r.status_code == 200, r.text
    assert [a["id"] for a in r.json()["items"]] == ids[::-1]


def test_list_pagination_walks_every_asset_once(api, editor, viewer):
    ids = {direct_upload(api, editor.token, random_bytes(100))["id"] for _ in range(5)}
    items, pages = list_all(api, viewer.token, limit=2)
    seen = [a["id"] for a in items]
    assert len(seen) == len(set(seen)), "an asset appeared on two pages"
    assert ids <= set(seen)
    assert pages >= 3
    created = [a["created_at"] for a in items]
    assert created == sorted(created, reverse=True)


def test_list_limit_is_honoured(api, editor, viewer):
    for _ in range(2):
        direct_upload(api, editor.token, random_bytes(100))
    r = api("GET", "/api/v1/assets", viewer.token, params={"limit": 1})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 1
    assert body["next_cursor"]


def test_list_filters_by_status(api, editor, viewer):
    created = create_asset(api, editor.token, 100)
    items, _ = list_all(api, viewer.token, status="uploading", limit=50)
    assert all(a["status"] == "uploading" for a in items)
    assert created["assetId"] in {a["id"] for a in items}


def test_list_filters_by_type(api, editor, viewer):
    asset = direct_upload(api, editor.token, random_bytes(100), filename="t.jpg",
                          mime_type="image/jpeg")
    kind = asset["type"]
    items, _ = list_all(api, viewer.token, type=kind, limit=50)
    assert items and all(a["type"] == kind for a in items)
    assert asset["id"] in {a["id"] for a in items}


@pytest.mark.parametrize("params", [{"limit": "-1"}, {"limit": "ten"},
                                    {"cursor": "!!not-a-cursor!!"}])
def test_list_rejects_bad_parameters(api, viewer, params):
    assert_problem(api("GET", "/api/v1/assets", viewer.token, params=params), 400)


def test_list_needs_a_token(api):
    assert_problem(api("GET", "/api/v1/assets"), 401)


# --------------------------------------------------------------------------- audit


def test_audit_records_actions(api, admin_token, editor):
    api.make_key(admin_token, "viewer", name="audited")
    data = random_bytes(200)
    asset = upload(api, editor.token, data)
    assert patch(api, editor.token, asset["id"], {"title": "audited"}).status_code == 200
    assert api("GET", f"/api/v1/assets/{asset['id']}/download", editor.token).status_code == 200
    r = api("GET", "/api/v1/audit", admin_token, params={"limit": 1000})
    assert r.status_code == 200, r.text
    actions = {item["action"] for item in r.json()["items"]}
    wanted = {"asset.create", "asset.complete", "asset.patch", "asset.download", "key.create"}
    assert wanted <= actions, f"audit lacks {sorted(wanted - actions)}"


def test_audit_entries_name_the_asset(api, admin_token, editor):
    asset = direct_upload(api, editor.token, random_bytes(300))
    assert patch(api, editor.token, asset["id"], {"title": "who"}).status_code == 200
    items = api("GET", "/api/v1/audit", admin_token, params={"limit": 1000}).json()["items"]
    mentioned = [i for i in items if asset["id"] in str(i) and i["action"] == "asset.patch"]
    assert mentioned, "no asset.patch audit entry mentions the asset id"


# --------------------------------------------------------------------------- routing


def test_unknown_route_is_404(api, viewer):
    assert_problem(api("GET", "/api/v1/no-such-thing", viewer.token), 404)


def test_unknown_top_level_route_is_404(api):
    assert api("GET", "/definitely/not/here").status_code == 404


def test_wrong_method_is_405(api, viewer):
    r = api("DELETE", "/api/v1/me", viewer.token)
    assert_problem(r, 405)


def test_wrong_method_on_healthz_is_405(api):
    assert api("POST", "/healthz").status_code == 405


def test_server_answers_keep_alive_requests(api, viewer):
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {viewer.token}"
        codes = [s.get(api.base_url + "/api/v1/me", timeout=30).status_code for _ in range(5)]
    assert codes == [200] * 5


# --------------------------------------------------------------------------- key revocation


def test_revoked_key_stops_working(api, admin_token):
    key = api.make_key(admin_token, "editor")
    assert api("GET", "/api/v1/me", key.token).status_code == 200
    r = api("DELETE", f"/api/v1/keys/{key.key_id}", admin_token)
    assert r.status_code == 204, r.text
    assert_problem(api("GET", "/api/v1/me", key.token), 401)
    assert_problem(api("DELETE", f"/api/v1/keys/{key.key_id}", admin_token), 404)
    items = api("GET", "/api/v1/audit", admin_token,
                params={"target_id": key.key_id}).json()["items"]
    assert "key.revoke" in {i["action"] for i in items}


def test_revoked_key_loses_s3_access_within_the_cache_time(api, admin_token):
    from botocore.exceptions import ClientError
    key = api.make_key(admin_token, "editor")
    s3 = api.s3(key)
    s3.head_bucket(Bucket="archive")
    assert api("DELETE", f"/api/v1/keys/{key.key_id}", admin_token).status_code == 204
    deadline = time.monotonic() + 15  # the S3 endpoint trusts a looked-up key for 10 s
    while True:
        try:
            s3.list_objects_v2(Bucket="archive", Prefix="tests/", MaxKeys=1)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidAccessKeyId"
            break
        assert time.monotonic() < deadline, "the revoked key still works over S3"
        time.sleep(0.5)


def test_only_admins_revoke_and_not_their_own_key(api, admin_token, editor):
    victim = api.make_key(admin_token, "viewer")
    assert_problem(api("DELETE", f"/api/v1/keys/{victim.key_id}", editor.token), 403)
    me = api("GET", "/api/v1/me", admin_token).json()
    assert_problem(api("DELETE", f"/api/v1/keys/{me['key_id']}", admin_token), 409)
    assert_problem(api("DELETE", "/api/v1/keys/not-a-key", admin_token), 404)
    assert api("GET", "/api/v1/me", victim.token).status_code == 200
