"""Search: POST /api/v1/search, GET /api/v1/search/suggest and acervod import, end to end.

Each test uses words of its own (a random marker), so tests share one server and still
count exactly what they made.
"""
import collections
import json
import random
import secrets
import time
import uuid

import pytest
import requests

from conftest import Server, Api, assert_problem, create_asset, run_acervod


def marker():
    # letters only, ending in x: no stemmer of es or en takes anything off it
    return "q" + "".join(random.choice("bcdfghjklmnpqrstvwz") for _ in range(8)) + "x"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("search")).start()
    yield s
    problems = s.close()
    assert not problems, f"acervod: {problems}\n{s.log_tail()}"


@pytest.fixture(scope="module")
def api(srv):
    return Api(srv.base_url, srv.s3_url)


@pytest.fixture(scope="module")
def editor(api, srv):
    return api.make_key(srv.admin_token, "editor")


@pytest.fixture(scope="module")
def viewer(api, srv):
    return api.make_key(srv.admin_token, "viewer")


def search(api, token, status=200, **body):
    r = api("POST", "/api/v1/search", token, json=body)
    assert r.status_code == status, r.text
    return r.json()


def titles(res):
    return [h["asset"]["title"] for h in res["hits"]]


def ids(res):
    return [h["asset"]["id"] for h in res["hits"]]


def make(api, token, title, description=None, tags=None, **editorial):
    fields = {"title": title}
    if description is not None:
        fields["description"] = description
    if tags is not None:
        fields["tags"] = tags
    if editorial:
        fields["editorial_metadata"] = editorial
    return create_asset(api, token, 10, filename="clip.mp4", **fields)["asset"]


def import_records(srv, records, *extra):
    lines = "\n".join(json.dumps(r) if isinstance(r, dict) else r for r in records) + "\n"
    path = srv.data_dir / f"import-{secrets.token_hex(4)}.jsonl"
    path.write_text(lines)
    return run_acervod("import", "--data-dir", srv.data_dir, *extra, path)


# --------------------------------------------------------------------------- analysis


def test_accents_and_stems_spanish(api, editor):
    m = marker()
    a = make(api, editor.token, f"{m} La inflación golpea a las familias")
    b = make(api, editor.token, f"{m} Las inflaciones de la posguerra")
    c = make(api, editor.token, f"{m} El paro baja en octubre")
    for q in ("inflación", "inflacion", "INFLACIÓN", "inflaciones", "Inflaciones"):
        res = search(api, editor.token, q=f"{m} {q}")
        assert sorted(ids(res)) == sorted([a["id"], b["id"]]), (q, titles(res))
        assert res["total"] == {"value": 2, "exact": True}
    assert ids(search(api, editor.token, q=f"{m} paro")) == [c["id"]]


def test_stems_english_and_highlights(api, editor):
    m = marker()
    a = make(api, editor.token, f"{m} Elections in the north", "The election night went long")
    res = search(api, editor.token, q=f"{m} election")
    assert ids(res) == [a["id"]]
    hl = res["hits"][0]["highlights"]
    assert "<em>Elections</em>" in hl["title"]
    assert "<em>election</em>" in hl["description"]
    assert ids(search(api, editor.token, q=f"{m} elections")) == [a["id"]]


def test_title_match_outranks_description_match(api, editor):
    m = marker()
    word = marker()
    in_title = make(api, editor.token, f"{m} {word} en portada", "nada más que decir")
    in_desc = [make(api, editor.token, f"{m} otra cosa {i}", f"se habla de {word} {word} aquí")
               for i in range(3)]
    res = search(api, editor.token, q=word)
    assert ids(res)[0] == in_title["id"], titles(res)
    assert set(ids(res)[1:]) == {x["id"] for x in in_desc}


def test_phrase_against_words(api, editor):
    m = marker()
    together = make(api, editor.token, f"{m} nota", "el banco central sube los tipos")
    apart = make(api, editor.token, f"{m} otra", "el banco del pueblo y el gobierno central")
    res = search(api, editor.token, q=f'{m} "banco central"')
    assert ids(res) == [together["id"]]
    res = search(api, editor.token, q=f"{m} banco central")
    assert ids(res) == [together["id"], apart["id"]], "words side by side rank first"
    res = search(api, editor.token, q=f"{m} banco -central")
    assert ids(res) == []
    res = search(api, editor.token, q=f"{m} (pueblo OR sube)")
    assert sorted(ids(res)) == sorted([together["id"], apart["id"]])


def test_prefix(api, editor):
    m = marker()
    a = make(api, editor.token, f"{m} Inflación y carestía")
    b = make(api, editor.token, f"{m} Influencers en campaña")
    make(api, editor.token, f"{m} Otra cosa")
    assert sorted(ids(search(api, editor.token, q=f"{m} infl*"))) == sorted([a["id"], b["id"]])
    assert ids(search(api, editor.token, q=f"{m} inflac*")) == [a["id"]]
    r = api("POST", "/api/v1/search", editor.token, json={"q": "i*"})
    body = assert_problem(r, 400, "position 0: a prefix needs at least 2")
    assert body["position"] == 0


# --------------------------------------------------------------------------- filters, facets


def test_filters_and_facets_match_brute_force(api, editor):
    m = marker()
    rnd = random.Random(7)
    cats = ["Economía", "Deportes", "Cultura"]
    progs = ["Telediario 1", "Informe Semanal"]
    tag_pool = ["madrid", "empleo", "fútbol", "cine", "elecciones"]
    made = []
    for i in range(40):
        tags = rnd.sample(tag_pool, rnd.randint(1, 3))
        cat, prog = rnd.choice(cats), rnd.choice(progs)
        a = make(api, editor.token, f"{m} pieza {i}", tags=tags, category=cat, program=prog)
        made.append((a, set(tags), cat, prog))
    res = search(api, editor.token, q=m, facets=["type", "category", "program", "tags",
                                                  "created_year", "created_month"],
                 facet_size=20, size=5)
    assert res["total"] == {"value": 40, "exact": True}
    assert res["facets_exact"] is True
    facets = {k: {v["value"]: v["count"] for v in vals} for k, vals in res["facets"].items()}
    assert facets["type"] == {"video": 40}
    assert facets["category"] == dict(collections.Counter(c for _, _, c, _ in made))
    assert facets["program"] == dict(collections.Counter(p for _, _, _, p in made))
    assert facets["tags"] == dict(collections.Counter(t for _, ts, _, _ in made for t in ts))
    year = time.strftime("%Y", time.gmtime())
    assert facets["created_year"] == {year: 40}
    assert sum(facets["created_month"].values()) == 40
    # a tag filter, in the query and in filters: the same hits
    want = sorted(a["id"] for a, ts, _, _ in made if "empleo" in ts and "madrid" not in ts)
    for body in ({"q": f"{m} tag:empleo -tag:madrid"},
                 {"q": f"{m} -tag:madrid", "filters": {"tags": ["empleo"]}}):
        res = search(api, editor.token, size=100, **body)
        assert sorted(ids(res)) == want, body
    want = sorted(a["id"] for a, _, c, p in made if c == "Cultura" and p == "Telediario 1")
    res = search(api, editor.token, size=100, q=f'{m} category:cultura program:"telediario 1"')
    assert sorted(ids(res)) == want
    res = search(api, editor.token, size=100, q=m,
                 filters={"category": "Cultura", "program": "Telediario 1", "type": "video"})
    assert sorted(ids(res)) == want
    assert search(api, editor.token, q=f"{m} type:audio")["total"]["value"] == 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert search(api, editor.token, q=f"{m} created:{today}")["total"]["value"] == 40
    assert search(api, editor.token, q=f"{m} created:<2020-01-01")["total"]["value"] == 0
    res = search(api, editor.token, q=m, filters={"created": {"from": "2000-01-01", "to": today}})
    assert res["total"]["value"] == 40


def test_viewers_see_only_finished_assets(api, editor, viewer):
    m = marker()
    a = make(api, editor.token, f"{m} en subida")  # uploading: not finished
    assert ids(search(api, editor.token, q=m)) == [a["id"]]
    assert search(api, viewer.token, q=m)["hits"] == []
    assert search(api, viewer.token, q=m, sort="newest")["hits"] == []
    sugg = api("GET", "/api/v1/search/suggest", viewer.token, params={"q": m[:6]}).json()
    assert not [s for s in sugg["suggestions"] if s["kind"] == "title" and m in s["value"]]


# --------------------------------------------------------------------------- edits


def test_patch_is_searchable_in_the_same_request(api, editor):
    m, old, new = marker(), marker(), marker()
    a = make(api, editor.token, f"{m} {old}")
    assert ids(search(api, editor.token, q=old)) == [a["id"]]
    r = api("PATCH", f"/api/v1/assets/{a['id']}", editor.token,
            json={"title": f"{m} {new}", "tags": ["recién"], "language": "es"})
    assert r.status_code == 200, r.text
    assert ids(search(api, editor.token, q=new)) == [a["id"]]
    assert search(api, editor.token, q=old)["hits"] == []
    assert ids(search(api, editor.token, q=f"{m} tag:recien")) == [a["id"]]
    # the upload given up: the asset and its document go
    r = api("DELETE", f"/api/v1/assets/{a['id']}/upload", editor.token)
    assert r.status_code == 204, r.text
    assert search(api, editor.token, q=new)["hits"] == []


def test_cursor_pages_without_duplicates_or_gaps_while_documents_change(api, editor):
    m = marker()
    originals = [make(api, editor.token, f"{m} número {i}", f"{m} texto") for i in range(45)]
    for sort in ("newest", "relevance", "oldest"):
        seen, cursor, pages = [], None, 0
        while True:
            body = {"q": m, "size": 10, "sort": sort}
            if cursor:
                body["cursor"] = cursor
            res = search(api, editor.token, **body)
            seen += ids(res)
            pages += 1
            # documents change between pages: new matches arrive, old ones are edited
            make(api, editor.token, f"{m} llegó tarde {pages}")
            victim = originals[(pages * 7) % len(originals)]
            r = api("PATCH", f"/api/v1/assets/{victim['id']}", editor.token,
                    json={"description": f"{m} texto editado {pages}"})
            assert r.status_code == 200
            cursor = res["next_cursor"]
            if not cursor:
                break
            assert pages < 20
        assert len(seen) == len(set(seen)), f"{sort}: duplicates"
        missing = {a["id"] for a in originals} - set(seen)
        assert not missing, f"{sort}: {len(missing)} originals never shown"
    r = api("POST", "/api/v1/search", editor.token, json={"q": m, "cursor": "n1.5x"})
    assert_problem(r, 400, "cursor 'n1.5x' is not one this search returned")
    r = api("POST", "/api/v1/search", editor.token, json={"q": m, "cursor": "n1.5",
                                                         "sort": "relevance"})
    assert_problem(r, 400, "cursor 'n1.5' belongs to another search")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("q, position, detail", [
    ("(madrid", 0, "expected a ')'"),
    ('"banco central', 0, "expected a closing"),
    ("type:banana", 5, None),
    ("created:2024-13-01", 8, None),
    ("-solo", 0, None),
    ("madrid OR -paro", 0, "exclusions only"),
    ("madrid OR created:2024", 10, "created: narrows the whole query"),
    ("madrid AND", 7, None),
    ("foo:bar", 0, None),
])
def test_malformed_queries_are_400_with_the_position(api, editor, q, position, detail):
    r = api("POST", "/api/v1/search", editor.token, json={"q": q})
    body = assert_problem(r, 400, f"position {position}:")
    assert body["position"] == position
    if detail:
        assert detail in body["detail"], body["detail"]


@pytest.mark.parametrize("body, detail", [
    ({"q": 5}, "field 'q'"),
    ({"q": "x", "size": 0}, "size must be an integer from 1 to 100"),
    ({"q": "x", "size": 1000}, "size must be"),
    ({"q": "x", "sort": "random"}, "sort must be one of relevance, newest, oldest"),
    ({"q": "x", "facets": ["colour"]}, "facets[0] is not one of"),
    ({"q": "x", "filters": {"type": "banana"}}, "filters.type 'banana'"),
    ({"q": "x", "filters": {"colour": "red"}}, "filters.colour is not a filter"),
    ({"q": "x", "filters": {"created": {"from": "yesterday"}}}, "filters.created has a bad bound"),
    ({"q": "x", "scope": "transcript", "facets": ["type"]}, "facets count assets"),
    ({"q": "x", "min_confidence": 0.5}, "min_confidence applies to the transcript scope"),
    ({"q": "x", "scope": "transcript", "min_confidence": 2}, "min_confidence must be"),
    ({"q": "type:video", "scope": "transcript"}, "a transcript search needs words"),
    ({"q": "x", "unknown": 1}, None),
])
def test_bad_requests_are_400(api, editor, body, detail):
    r = api("POST", "/api/v1/search", editor.token, json=body)
    got = assert_problem(r, 400)
    if detail:
        assert detail in got["detail"], got["detail"]


def test_hostile_queries_are_bounded(api, editor):
    cases = [
        ("x" * 2049, "q is 2049 bytes"),
        (" ".join(f"w{i}" for i in range(300)), "position"),
        ("w " * 5000, "field 'q' must have at most"),
        ('"' * 1501, "position"),
        ("(" * 500 + "a" + ")" * 500, "position"),
        ("a* " * 100, "position"),
    ]
    # refused by the parser's caps before any search (how fast is for bench/run search)
    for q, detail in cases:
        r = api("POST", "/api/v1/search", editor.token, json={"q": q})
        body = assert_problem(r, 400)
        assert detail in body["detail"], body["detail"]
    # long but legal: a 60-word query of common words answers
    res = search(api, editor.token, q=" OR ".join(["el", "la", "de", "y"] * 15))
    assert "hits" in res
    r = api("POST", "/api/v1/search", editor.token, data=b"{not json",
            headers={"Content-Type": "application/json"})
    assert_problem(r, 400)


# --------------------------------------------------------------------------- transcripts


def corpus_record(m, i, lang="es", **kw):
    rec = {
        "id": str(uuid.uuid4()), "type": "video", "status": "ready", "lang": lang,
        "title": f"{m} programa {i}", "description": f"{m} descripción del programa {i}",
        "filename": f"prog{i}.mp4", "tags": ["archivo"], "category": "Sociedad",
        "program": "Archivo Vivo", "created_at": "2024-05-0%dT10:00:00Z" % (i % 9 + 1),
        "duration_ms": 600000,
        "entities": [{"type": "person", "name": "Ana García"}], "objects": ["microphone"],
        "faces": [], "ocr_text": f"{m} rótulo", "topics": ["sociedad"],
        "transcript": [
            {"i": 0, "start_ms": 0, "end_ms": 5000, "speaker": "S1", "confidence": 0.95,
             "text": "Buenas noches y bienvenidos al programa"},
            {"i": 1, "start_ms": 5000, "end_ms": 11000, "speaker": "S1", "confidence": 0.91,
             "text": "Hoy hablamos de la subida del precio de la vivienda"},
            {"i": 2, "start_ms": 11000, "end_ms": 17000, "speaker": "S2", "confidence": 0.42,
             "text": "La vivienda en alquiler sube un diez por ciento"},
            {"i": 3, "start_ms": 17000, "end_ms": 23000, "speaker": "S2", "confidence": 0.88,
             "text": f"Gracias por ver {m} hasta el final"},
        ],
    }
    rec.update(kw)
    return rec


def test_import_and_transcript_search(api, editor, viewer, srv):
    m = marker()
    recs = [corpus_record(m, i) for i in range(5)]
    bad = ['{"type": "video"', json.dumps({"type": "banana"}),
           json.dumps(corpus_record(m, 9, transcript=[{"start_ms": 5, "end_ms": 1, "text": "x"}])),
           # no master: nothing for the upload sweep or a resumed ingest to act on
           json.dumps(corpus_record(m, 10, status="processing")),
           json.dumps(corpus_record(m, 11, status="uploading"))]
    proc = import_records(srv, recs + bad)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["lines"], report["imported"], report["rejected"]) == (10, 5, 5)
    assert "line 6: not a JSON object" in proc.stderr
    assert "line 7: 'type' must be video, audio or image" in proc.stderr
    assert "line 8: transcript[0] runs from 5 to 1 ms" in proc.stderr
    assert ("line 9: 'status' 'processing' cannot be imported: a record without a master is "
            "ready, archived or failed") in proc.stderr
    assert "line 10: 'status' 'uploading' cannot be imported" in proc.stderr
    # the asset scope finds words of the transcript
    res = search(api, viewer.token, q=f"{m} vivienda")
    assert res["total"] == {"value": 5, "exact": True}
    tr = res["hits"][0]["highlights"]["transcript"]
    assert tr["start_ms"] == 5000 and "<em>vivienda</em>" in tr["text"]
    # the transcript scope: the moments it is said
    res = search(api, viewer.token, q=f"vivienda {m}", scope="transcript")
    assert res["hits"] == []  # the marker is said in segment 3 only: no segment has both
    res = search(api, viewer.token, q="vivienda", scope="transcript",
                 filters={"program": "Archivo Vivo", "created": {"from": "2024-05-01",
                                                                  "to": "2024-05-09"}},
                 size=100)
    mine = [h for h in res["hits"] if m in h["asset"]["title"]]
    assert len(mine) == 10
    for h in mine:
        assert (h["start_ms"], h["end_ms"]) in ((5000, 11000), (11000, 17000))
        assert "<em>vivienda</em>" in h["text"]
        assert h["asset_id"] == h["asset"]["id"]
    # confidence filter: segment 2 (0.42) goes
    res = search(api, viewer.token, q=f'"precio de la vivienda" OR "vivienda en alquiler"',
                 scope="transcript", min_confidence=0.8, size=100,
                 filters={"program": "Archivo Vivo"})
    mine = [h for h in res["hits"] if m in h["asset"]["title"]]
    assert {(h["idx"], h["confidence"]) for h in mine} == {(1, 0.91)}
    # the marker is in segment 3 of each, 17 s in; paging by 2
    seen, cursor = [], None
    while True:
        body = {"q": m, "scope": "transcript", "size": 2, "sort": "newest"}
        if cursor:
            body["cursor"] = cursor
        res = search(api, viewer.token, **body)
        seen += [(h["asset_id"], h["idx"], h["start_ms"]) for h in res["hits"]]
        cursor = res["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len(set(seen)) == 5
    assert all(idx == 3 and start == 17000 for _, idx, start in seen)
    # imported again: skipped, nothing doubled
    proc = import_records(srv, recs)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped"] == 5
    assert search(api, viewer.token, q=f"{m} vivienda")["total"]["value"] == 5
    # an imported asset edited through the API: its document is replaced, not doubled
    one = search(api, editor.token, q=f"{m} programa 3")["hits"][0]["asset"]
    r = api("PATCH", f"/api/v1/assets/{one['id']}", editor.token, json={"title": "Renombrado"})
    assert r.status_code == 200
    assert search(api, editor.token, q=f'"{m} programa 3"')["hits"] == []  # the old title
    assert ids(search(api, editor.token, q="renombrado vivienda")) == [one["id"]]
    check = run_acervod("sql", "--data-dir", srv.data_dir,
                        "INSERT INTO search_doc(search_doc, rank) VALUES ('integrity-check', 0);"
                        "INSERT INTO search_title(search_title, rank) "
                        "VALUES ('integrity-check', 0)")
    assert check.returncode == 0, check.stderr


def test_totals_and_facets_beyond_the_exact_bound_are_estimates(api, editor, srv):
    """12,000 hits: the total is extrapolated and the facets sampled, both marked, and
    both near the truth (categories in known proportions)."""
    m = marker()
    cats = ["Economía"] * 6 + ["Deportes"] * 3 + ["Cultura"]
    recs = [{"type": "image", "title": f"{m} foto {i}", "category": cats[i % 10],
             "created_at": f"2020-01-01T00:00:{i % 60:02d}Z"} for i in range(12000)]
    proc = import_records(srv, recs)
    assert proc.returncode == 0, proc.stderr
    res = search(api, editor.token, q=m, facets=["category", "type"], size=5)
    assert res["total"]["exact"] is False
    assert abs(res["total"]["value"] - 12000) / 12000 < 0.1, res["total"]
    assert res["facets_exact"] is False
    got = {v["value"]: v["count"] for v in res["facets"]["category"]}
    for cat, share in (("Economía", 0.6), ("Deportes", 0.3), ("Cultura", 0.1)):
        assert abs(got[cat] - 12000 * share) / (12000 * share) < 0.15, got
    # a filter that leaves fewer than 10,000: exact again, facets too (2,500 at most)
    res = search(api, editor.token, q=f"{m} category:cultura", facets=["category"])
    assert res["total"] == {"value": 1200, "exact": True}
    assert res["facets_exact"] is True
    assert res["facets"]["category"] == [{"value": "Cultura", "count": 1200}]


def test_technical_filters(api, editor, srv):
    m = marker()
    recs = [corpus_record(m, 0, video_codec="h264", width=1920, height=1080),
            corpus_record(m, 1, video_codec="hevc", width=3840, height=2160),
            corpus_record(m, 2, video_codec="h264", width=720, height=1280),  # portrait HD
            corpus_record(m, 3, type="image", width=640, height=480, duration_ms=None,
                          transcript=None)]
    assert import_records(srv, recs).returncode == 0

    def titles_of(**body):
        return sorted(h["asset"]["title"] for h in search(api, editor.token, **body)["hits"])

    assert titles_of(q=f"{m} codec:h264") == [f"{m} programa 0", f"{m} programa 2"]
    assert titles_of(q=f"{m} resolution:1080p") == [f"{m} programa 0"]
    assert titles_of(q=f"{m} resolution:4k") == [f"{m} programa 1"]
    assert titles_of(q=f"{m} resolution:hd") == [f"{m} programa 2"]
    assert titles_of(q=f"{m} resolution:sd") == [f"{m} programa 3"]
    assert titles_of(q=m, filters={"codec": "HEVC"}) == [f"{m} programa 1"]
    assert titles_of(q=m, filters={"resolution": "fullhd", "type": "video"}) == \
        [f"{m} programa 0"]
    assert titles_of(q=f"{m} duration:>5m") == [f"{m} programa {i}" for i in range(3)]
    r = api("POST", "/api/v1/search", editor.token, json={"q": m, "filters": {"codec": "a b"}})
    assert_problem(r, 400, "filters.codec must be a name")


def test_suggest(api, editor, viewer, srv):
    m = marker()
    recs = [corpus_record(m, i, tags=[f"{m}tag", "otro"], program=f"{m} Noche")
            for i in range(3)]
    assert import_records(srv, recs).returncode == 0
    res = api("GET", "/api/v1/search/suggest", viewer.token, params={"q": m[:7]}).json()
    got = {(s["kind"], s["value"]): s.get("count") for s in res["suggestions"]}
    assert got[("tag", f"{m}tag")] == 3
    assert got[("program", f"{m} Noche")] == 3
    titles_ = [s for s in res["suggestions"] if s["kind"] == "title"]
    assert titles_ and all(m in s["value"] for s in titles_)
    r = api("GET", "/api/v1/search/suggest", viewer.token, params={"q": m.upper() + " noc"})
    assert [s["value"] for s in r.json()["suggestions"] if s["kind"] == "program"] == [f"{m} Noche"]
    assert_problem(api("GET", "/api/v1/search/suggest", viewer.token), 400, "query parameter 'q'")
    assert_problem(api("GET", "/api/v1/search/suggest", viewer.token, params={"q": "x" * 201}),
                   400)
    assert_problem(api("GET", "/api/v1/search/suggest", viewer.token,
                       params={"q": "ab", "limit": 0}), 400)
    assert api("GET", "/api/v1/search/suggest", params={"q": "ab"}).status_code == 401


def test_searches_past_the_gate_wait_their_turn_then_get_503(fresh_server):
    """search_concurrency searches run at once; the others wait in order, and one that
    waited search_queue_timeout is answered 503 with Retry-After. Other requests are not
    gated: a GET goes straight through while searches queue."""
    import concurrent.futures
    srv = fresh_server(env={"ACERVO_SEARCH_CONCURRENCY": "1",
                            "ACERVO_SEARCH_QUEUE_TIMEOUT": "2s"})
    api = Api(srv.base_url, srv.s3_url)
    editor = api.make_key(srv.admin_token, "editor")
    m = marker()
    # searches with work to do: every record matches, each with a long transcript to scan
    long_transcript = [{"i": i, "start_ms": i * 1000, "end_ms": i * 1000 + 900,
                        "speaker": "S1", "confidence": 0.9,
                        "text": f"segmento {i} sobre la vivienda y {m} en el archivo"}
                       for i in range(40)]
    recs = [corpus_record(m, i, transcript=long_transcript) for i in range(400)]
    assert import_records(srv, recs).returncode == 0
    asset = make(api, editor.token, f"{m} subido")

    def one(_):
        with requests.Session() as s:
            r = s.post(srv.base_url + "/api/v1/search", json={"q": m, "size": 20},
                       headers={"Authorization": f"Bearer {editor.token}"}, timeout=120)
            return r.status_code, r.headers.get("Retry-After"), r.text

    with concurrent.futures.ThreadPoolExecutor(120) as pool:
        futures = [pool.submit(one, i) for i in range(120)]
        # while they queue, a metadata GET is answered (it does not wait for them)
        r = api("GET", f"/api/v1/assets/{asset['id']}", editor.token)
        assert r.status_code == 200, r.text
        results = [f.result() for f in futures]
    codes = collections.Counter(code for code, _, _ in results)
    assert set(codes) <= {200, 503}, codes
    assert codes[200] >= 1 and codes[503] >= 1, codes
    for code, retry, text in results:
        if code == 503:
            assert retry == "1"
            assert "searches are running" in json.loads(text)["detail"]
