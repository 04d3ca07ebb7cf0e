#!/usr/bin/python3
"""Search over the HTTP API at scale, against PostgreSQL full-text search on the same corpus.

Generates a corpus with bench/gen-corpus (kept in bench/work/search-N for the next run),
bulk-loads it with `acervod import` (assets/s), records the index size per asset, starts
acervod on it and times a fixed mixed query set over POST /api/v1/search (one client,
warm cache) and suggestions over GET /api/v1/search/suggest. Then PostgreSQL 15
(tsvector + GIN, started here) gets the same documents, analysed by acervo's analyzer
so both find the same terms, and the same query mix; the report gives the ratio.
"""
import argparse
import collections
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench as common  # noqa: E402
from bench import BenchError, log  # noqa: E402
from jobs import Postgres  # noqa: E402

TARGET_P50_MS, TARGET_P99_MS = 10.0, 100.0  # 1M assets
TARGET_P99_5M_MS = 300.0
TARGET_SUGGEST_P99_MS = 20.0
TARGET_LOAD = 5000  # assets/s
CLASSES = ("word", "word_common", "two_words", "phrase", "prefix", "filtered", "transcript")
FACETS = ["type", "category", "program", "tags", "entities", "created_year"]
SEED = 42


# --------------------------------------------------------------------------- corpus and load


def corpus(work, count):
    path = work / f"corpus-{count}.jsonl"
    if path.exists() and path.stat().st_size > 0:
        return path
    log(f"generating {count} assets into {path}")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        subprocess.run([str(REPO / "build/gen-corpus"), "--count", str(count), "--seed",
                        str(SEED)], stdout=out, check=True)
    tmp.rename(path)
    return path


def load(acervod, data, path):
    if data.exists():
        shutil.rmtree(data)
    log(f"importing {path.name} with acervod import")
    t0 = time.monotonic()
    res = subprocess.run([str(acervod), "import", "--data-dir", str(data),
                          "--log-level", "warn", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"acervod import failed: {res.stderr[-2000:]}")
    out = json.loads(res.stdout)
    out["wall"] = time.monotonic() - t0
    log(f"imported {out['imported']} assets in {out['seconds']:.1f} s: "
        f"{out['assets_per_second']:.0f}/s")
    return out


def sql(acervod, data, text, timeout=3600):
    res = subprocess.run([str(acervod), "sql", "--data-dir", str(data), "--log-level", "warn",
                          text], capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise BenchError(f"acervod sql failed: {res.stderr[-2000:]}")
    return [line.split("\t") for line in res.stdout.splitlines()]


def index_size(acervod, data, count):
    rows = sql(acervod, data, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
    sizes = {name: int(n) for name, n in rows}
    search = sum(n for name, n in sizes.items() if name.startswith(("search_", "idx_search")))
    total = (data / "catalog.db").stat().st_size
    return {"search_bytes": search, "search_per_asset": search / count,
            "db_bytes": total, "db_per_asset": total / count}


# --------------------------------------------------------------------------- the query mix


WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


def make_mix(path, per_class, rnd):
    """The same fixed mix every run (seeded): words drawn by corpus frequency (common words
    in) and uniformly among words seen at least twice (rare ones), from a sample of titles,
    descriptions and transcripts; phrases from titles; prefixes of drawn words."""
    freq, titles, tags, years = collections.Counter(), [], [], set()
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 50:
                continue
            d = json.loads(line)
            text = " ".join([d["title"] or "", d["description"] or ""] +
                            [s["text"] for s in d["transcript"] or []])
            freq.update(w.lower() for w in WORD.findall(text))
            titles.append(d["title"])
            tags += d["tags"]
            years.add(d["created_at"][:4])
            if len(titles) >= 20000:
                break
    words = [w for w, n in freq.items() if n >= 2]
    weights = [freq[w] for w in words]
    years = sorted(years)

    def by_freq():
        return rnd.choices(words, weights)[0]

    def uniform():
        return rnd.choice(words)

    def draw():  # half by frequency, half uniform
        return by_freq() if rnd.random() < 0.5 else uniform()

    mix = []
    for _ in range(per_class):
        mix.append(("word", {"q": draw()}))
        mix.append(("word_common", {"q": by_freq()}))
        mix.append(("two_words", {"q": f"{draw()} {draw()}"}))
        t = WORD.findall(rnd.choice(titles))
        k = rnd.randint(2, 3)
        start = rnd.randint(0, max(0, len(t) - k))
        mix.append(("phrase", {"q": '"' + " ".join(t[start:start + k]) + '"'}))
        w = by_freq()
        mix.append(("prefix", {"q": w[:rnd.randint(3, min(5, len(w)))] + "*"}))
        mix.append(("filtered", {"q": f"{draw()} type:{rnd.choice(['video', 'audio', 'image'])}"
                                      f" created:{rnd.choice(years)}"}))
        mix.append(("transcript", {"q": draw(), "scope": "transcript"}))
    rnd.shuffle(mix)
    suggest = []
    for _ in range(per_class * 2):
        src = rnd.choice([by_freq(), rnd.choice(tags)])
        suggest.append(src[:rnd.randint(2, min(6, max(2, len(src))))])
    return mix, suggest


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]


def summarise(lat):
    out = {}
    for cls, v in lat.items():
        out[cls] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v)}
    every = [x for v in lat.values() for x in v]
    out["mix"] = {"n": len(every), "p50": pct(every, 50), "p99": pct(every, 99),
                  "max": max(every)}
    return out


def run_acervo_mix(srv, mix, suggest):
    s = requests.Session()
    s.headers.update(srv.auth)

    def one(body):
        if body.get("scope") != "transcript":
            body = dict(body, facets=FACETS)
        t0 = time.perf_counter()
        r = s.post(srv.base + "/api/v1/search", json=body, timeout=120)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise BenchError(f"search {body} answered {r.status_code}: {r.text[:300]}")
        return ms, r.json()

    log(f"warm-up: {len(mix)} queries, twice")
    for _ in range(2):
        for _, body in mix:
            one(body)
    lat, estimates = collections.defaultdict(list), 0
    log("timed run")
    for cls, body in mix:
        ms, res = one(body)
        lat[cls].append(ms)
        estimates += not res["total"]["exact"]
    slat = []
    for q in suggest:
        s.get(srv.base + "/api/v1/search/suggest", params={"q": q}, timeout=60)
    for q in suggest:
        t0 = time.perf_counter()
        r = s.get(srv.base + "/api/v1/search/suggest", params={"q": q}, timeout=60)
        slat.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise BenchError(f"suggest {q!r} answered {r.status_code}: {r.text[:300]}")
    return summarise(lat), {"n": len(slat), "p50": pct(slat, 50), "p99": pct(slat, 99)}, estimates


# --------------------------------------------------------------------------- PostgreSQL


PG_SCHEMA = """
CREATE TABLE docs (seq int, type text, created_at bigint, tsv tsvector, keys text[],
                   category text, program text, tags text[], entities text[]);
CREATE TABLE segs (id bigint, seq int, tsv tsvector);
"""

PG_INDEXES = """
CREATE INDEX docs_tsv ON docs USING gin (tsv);
CREATE INDEX docs_keys ON docs USING gin (keys);
CREATE INDEX segs_tsv ON segs USING gin (tsv);
ANALYZE docs; ANALYZE segs;
"""


def psql(pg, text, timeout=7200):
    res = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "bench", "-d",
                          "bench", "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", text],
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise BenchError(f"psql failed: {res.stderr[-1000:]}")
    return res.stdout.strip()


def pg_copy(pg, table, cols, rows_iter):
    proc = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "bench", "-d",
                             "bench", "-v", "ON_ERROR_STOP=1", "-q", "-c",
                             f"COPY {table} ({cols}) FROM STDIN"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    n = 0
    for row in rows_iter:
        proc.stdin.write(row.encode())
        n += 1
    proc.stdin.close()
    if proc.wait() != 0:
        raise BenchError(f"COPY {table} failed: {proc.stderr.read().decode()[-1000:]}")
    return n


def pg_text(s):
    return s.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def pg_array(values):
    return "{" + ",".join('"' + v.replace("\\", "\\\\\\\\").replace('"', '\\\\"') + '"'
                          for v in values) + "}"


def sql_rows(acervod, data, query, width):
    """Streams the rows of an acervod sql query (tab-separated fields, width of them)."""
    proc = subprocess.Popen([str(acervod), "sql", "--data-dir", str(data), "--log-level", "warn",
                             query], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        f = line.rstrip("\n").split("\t")
        if len(f) == width:
            yield f
    if proc.wait() != 0:
        raise BenchError(f"acervod sql failed: {query[:80]}")


def pg_load(pg, acervod, data):
    """The documents as acervo indexes them (its analyzer's terms, weighted by column) and
    the filter keys, from the loaded catalog; segments likewise."""
    t0 = time.monotonic()
    query = ("SELECT s.seq, s.type, s.created_at, "
             "replace(s.t_title, char(9), ' '), replace(s.t_names, char(9), ' '), "
             "replace(s.t_body, char(9), ' '), replace(s.t_ai, char(9), ' '), s.t_keys, "
             "coalesce(json_extract(a.editorial_metadata, '$.category'), ''), "
             "coalesce(json_extract(a.editorial_metadata, '$.program'), ''), "
             "coalesce((SELECT json_group_array(value) FROM "
             "json_each(a.editorial_metadata, '$.tags')), '[]'), "
             "coalesce((SELECT json_group_array(json_extract(value, '$.name')) FROM "
             "json_each(a.ai_metadata, '$.entities')), '[]') "
             "FROM search_src s JOIN assets a ON a.seq = s.seq")

    def rows():
        for f in sql_rows(acervod, data, query, 12):
            yield "\t".join([f[0], f[1], f[2], pg_text(f[3]), pg_text(f[4]), pg_text(f[5]),
                             pg_text(f[6]), pg_array(f[7].split()), pg_text(f[8]),
                             pg_text(f[9]), pg_array(json.loads(f[10])),
                             pg_array([e for e in json.loads(f[11]) if e])]) + "\n"

    psql(pg, "CREATE TABLE stage (seq int, type text, created_at bigint, t_title text, "
            "t_names text, t_body text, t_ai text, keys text[], category text, program text, "
            "tags text[], entities text[])")
    n = pg_copy(pg, "stage", "seq, type, created_at, t_title, t_names, t_body, t_ai, keys, "
                "category, program, tags, entities", rows())
    psql(pg, "INSERT INTO docs SELECT seq, type, created_at, "
            "setweight(to_tsvector('simple', t_title), 'A') || "
            "setweight(to_tsvector('simple', t_names), 'B') || "
            "setweight(to_tsvector('simple', t_body), 'C') || "
            "setweight(to_tsvector('simple', t_ai), 'D'), keys, category, program, tags, "
            "entities FROM stage; DROP TABLE stage")
    seg_q = ("SELECT t.id, t.id >> 17, acervo_terms(x.lang, t.text) FROM transcript_segments t "
             "JOIN search_src x ON x.seq = t.id >> 17")

    def seg_rows():
        for f in sql_rows(acervod, data, seg_q, 3):
            yield f"{f[0]}\t{f[1]}\t{pg_text(f[2])}\n"

    psql(pg, "CREATE TABLE segstage (id bigint, seq int, t text)")
    nseg = pg_copy(pg, "segstage", "id, seq, t", seg_rows())
    psql(pg, "INSERT INTO segs SELECT id, seq, to_tsvector('simple', t) FROM segstage; "
            "DROP TABLE segstage")
    t1 = time.monotonic()
    for stmt in PG_INDEXES.strip().split(";"):
        if stmt.strip():
            psql(pg, stmt)
    t2 = time.monotonic()
    log(f"PostgreSQL: {n} documents and {nseg} segments loaded in {t1 - t0:.0f} s, "
        f"indexed in {t2 - t1:.0f} s")
    size = int(psql(pg, "SELECT pg_total_relation_size('docs') + pg_total_relation_size('segs')"))
    return {"docs": n, "segs": nseg, "load_s": t1 - t0, "index_s": t2 - t1,
            "bytes": size, "per_asset": size / max(n, 1)}


def terms_of(acervod, data, words):
    """Each word's analyses (es, en, folded), as acervo's queries look them up."""
    uniq = sorted(set(words))
    out = {}
    for i in range(0, len(uniq), 300):
        chunk = uniq[i:i + 300]
        lit = [("'" + w.replace("'", "''") + "'") for w in chunk]
        parts = [f"SELECT {x}, acervo_terms('es', {x}), acervo_terms('en', {x}), "
                 f"acervo_terms('', {x})" for x in lit]
        for row in sql(acervod, data, " UNION ALL ".join(parts)):
            out[row[0]] = sorted({t for t in row[1:] if t})
    return out


def tsquery_of(body, terms):
    """The PostgreSQL tsquery and key filters of one query of the mix."""
    q = body["q"]
    keys = re.findall(r"\b(type|created):(\S+)", q)
    text = re.sub(r"\b(type|created):\S+", "", q).strip()
    filters = []
    for k, v in keys:
        filters.append(f"{'type' if k == 'type' else 'year'}={v}")
    if text.startswith('"'):
        words = WORD.findall(text)
        variants = {" <-> ".join(terms[w][j] if j < len(terms[w]) else terms[w][0]
                                 for w in words) for j in range(3)}
        tq = " | ".join(f"({v})" for v in sorted(variants))
    elif text.endswith("*"):
        tq = text[:-1].lower() + ":*"
    else:
        tq = " & ".join("(" + " | ".join(terms[w]) + ")" for w in text.split())
    return tq, filters


def run_pg_mix(pg, mix, terms):
    import psycopg2  # Debian's python3-psycopg2 (scripts/install-deps)

    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="bench", dbname="bench")
    conn.autocommit = True
    cur = conn.cursor()

    def one(cls, body):
        tq, filters = tsquery_of(body, terms)
        t0 = time.perf_counter()
        if cls == "transcript":
            cur.execute("SELECT id FROM segs WHERE tsv @@ to_tsquery('simple', %s) "
                        "ORDER BY ts_rank(tsv, to_tsquery('simple', %s)) DESC LIMIT 20",
                        (tq, tq))
            cur.fetchall()
            cur.execute("SELECT count(*) FROM segs WHERE tsv @@ to_tsquery('simple', %s)",
                        (tq,))
            cur.fetchall()
        else:
            where = "tsv @@ to_tsquery('simple', %s)" + (" AND keys @> %s" if filters else "")
            args = (tq, filters) if filters else (tq,)
            cur.execute(f"SELECT seq FROM docs WHERE {where} ORDER BY "
                        f"ts_rank(tsv, to_tsquery('simple', %s)) DESC LIMIT 20", args + (tq,))
            cur.fetchall()
            cur.execute(f"CREATE TEMP TABLE hits AS SELECT seq, type, created_at, category, "
                        f"program, tags, entities FROM docs WHERE {where}", args)
            cur.execute("SELECT count(*) FROM hits")
            cur.fetchall()
            for col in ("type", "category", "program",
                        "to_char(to_timestamp(created_at / 1000), 'YYYY')"):
                cur.execute(f"SELECT {col}, count(*) FROM hits GROUP BY 1 ORDER BY 2 DESC "
                            f"LIMIT 10")
                cur.fetchall()
            for col in ("tags", "entities"):
                cur.execute(f"SELECT v, count(*) FROM hits, unnest({col}) v GROUP BY 1 "
                            f"ORDER BY 2 DESC LIMIT 10")
                cur.fetchall()
            cur.execute("DROP TABLE hits")
        return (time.perf_counter() - t0) * 1000

    log(f"PostgreSQL warm-up: {len(mix)} queries")
    for cls, body in mix:
        one(cls, body)
    lat = collections.defaultdict(list)
    log("PostgreSQL timed run")
    for cls, body in mix:
        lat[cls].append(one(cls, body))
    conn.close()
    return summarise(lat)


# --------------------------------------------------------------------------- report


def report(info, args, count, loaded, size, res, sugg, estimates, peer, peer_load):
    big = count >= 5_000_000
    ok_p99 = res["mix"]["p99"] <= (TARGET_P99_5M_MS if big else TARGET_P99_MS)
    ok_p50 = big or res["mix"]["p50"] <= TARGET_P50_MS
    ok_sugg = big or sugg["p99"] <= TARGET_SUGGEST_P99_MS
    ok_load = loaded.get("reused") or loaded["assets_per_second"] >= TARGET_LOAD
    ok = ok_p99 and ok_p50 and ok_sugg and ok_load
    when = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    lines = [f"## {when} — search, {count:,} assets ({loaded.get('segments', 0):,} segments)", ""]
    lines += [f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
              f"{info['fs']}, kernel {info['kernel']}; acervo {info['commit']}",
              f"- corpus: `bench/gen-corpus --count {count} --seed {SEED}`; mix: "
              f"{args.per_class} queries of each class, {len(CLASSES)} classes, one client, "
              f"warm, facets ({', '.join(FACETS)}) on every asset query",
              "",
              f"| | acervo | PostgreSQL 15 (tsvector + GIN) | ratio |",
              f"|---|---|---|---|"]
    for cls in CLASSES + ("mix",):
        a = res[cls]
        p = peer[cls] if peer else None
        ratio = f"{p['p50'] / a['p50']:.1f}x / {p['p99'] / a['p99']:.1f}x" if p else "-"
        lines.append(f"| {cls} p50 / p99 ms | {a['p50']:.1f} / {a['p99']:.1f} | "
                     + (f"{p['p50']:.1f} / {p['p99']:.1f}" if p else "not run") + f" | {ratio} |")
    lines.append(f"| suggest p50 / p99 ms | {sugg['p50']:.1f} / {sugg['p99']:.1f} | - | - |")
    lines.append("| bulk load | " + ("not measured (the catalog of the previous run)"
                                      if loaded.get("reused") else
                                      f"{loaded['assets_per_second']:.0f} assets/s "
                                      f"({loaded['seconds']:.0f} s)") + " | "
                 + (f"{peer_load['docs'] / peer_load['load_s']:.0f} documents/s "
                    f"(COPY of pre-analysed text) + {peer_load['index_s']:.0f} s GIN build"
                    if peer_load else "not run") + " | - |")
    lines.append(f"| index size per asset | {size['search_per_asset'] / 1024:.2f} KB "
                 f"(whole catalog {size['db_per_asset'] / 1024:.2f} KB) | "
                 + (f"{peer_load['per_asset'] / 1024:.2f} KB (tables + GIN)" if peer_load
                    else "-") + " | - |")
    lines += ["", f"- totals marked estimates (beyond 10,000 hits, or transcript segments not "
              f"all read) in {estimates} of {res['mix']['n']} queries"]
    if loaded.get("reused"):
        lines.append("- the catalog of the previous run, queried again (`--reuse`)")
    target = (f"p99 ≤ {TARGET_P99_5M_MS:.0f} ms" if big else
              f"p50 ≤ {TARGET_P50_MS:.0f} ms, p99 ≤ {TARGET_P99_MS:.0f} ms, suggest p99 ≤ "
              f"{TARGET_SUGGEST_P99_MS:.0f} ms")
    lines.append(f"- targets: {target}, load ≥ {TARGET_LOAD} assets/s: "
                 f"{'PASS' if ok else 'MISS'} (mix p99 {'ok' if ok_p99 else 'missed'}, p50 "
                 f"{'ok' if ok_p50 else 'missed'}, suggest {'ok' if ok_sugg else 'missed'}, "
                 f"load {'not measured' if loaded.get('reused') else 'ok' if ok_load else 'missed'})")
    return "\n".join(lines) + "\n", ok


def main():
    ap = argparse.ArgumentParser(prog="bench/run search", description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="assets (default 1,000,000)")
    ap.add_argument("--per-class", type=int, default=100,
                    help="queries of each class in the mix (default 100)")
    ap.add_argument("--quick", action="store_true",
                    help="100,000 assets, 20 queries a class, no PostgreSQL")
    ap.add_argument("--no-peer", action="store_true", help="acervo only (no PostgreSQL)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the loaded catalog")
    ap.add_argument("--reuse", action="store_true",
                    help="query the catalog a --keep run left (no load; its rate is not reported)")
    ap.add_argument("--acervod", default=os.environ.get("ACERVOD", str(REPO / "build/acervod")))
    args = ap.parse_args()
    if args.quick:
        args.count, args.per_class, args.no_peer = 100_000, 20, True
    acervod = Path(args.acervod)
    if not os.access(acervod, os.X_OK) or not os.access(REPO / "build/gen-corpus", os.X_OK):
        log("build/acervod or build/gen-corpus missing (run `make build`)")
        return 2

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    work = HERE / "work" / "search"
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine_info(HERE / "work")
    data = work / f"data-{args.count}"
    srv = pg = None
    try:
        path = corpus(work, args.count)
        if args.reuse and (data / "catalog.db").exists():
            loaded = {"assets_per_second": 0, "seconds": 0, "reused": True}
        else:
            loaded = load(acervod, data, path)
        loaded["segments"] = int(sql(acervod, data, "SELECT count(*) FROM transcript_segments")
                                 [0][0])
        size = index_size(acervod, data, args.count)
        mix, suggest = make_mix(path, args.per_class, random.Random(SEED))
        srv = common.Acervod(acervod, data, work / "acervod.log")
        if loaded.get("reused"):  # the admin token of the first start is gone: a new key
            key = subprocess.run([str(acervod), "keys", "create", "--data-dir", str(data),
                                  "--role", "editor", "--log-level", "warn"],
                                 capture_output=True, text=True, check=True)
            srv.auth = {"Authorization": "Bearer " + json.loads(key.stdout)["token"]}
        srv.start()
        res, sugg, estimates = run_acervo_mix(srv, mix, suggest)
        srv.stop()
        srv = None
        peer = peer_load = None
        if not args.no_peer:
            words = [w for _, b in mix for w in WORD.findall(b["q"])]
            terms = terms_of(acervod, data, words)
            pg = Postgres(work / "pg")
            if pg.root.exists():
                shutil.rmtree(pg.root)
            pg.start()
            psql(pg, PG_SCHEMA)
            peer_load = pg_load(pg, acervod, data)
            peer = run_pg_mix(pg, mix, terms)
        text, ok = report(info, args, args.count, loaded, size, res, sugg, estimates, peer,
                          peer_load)
        return common.publish(text, ok, args.no_record)
    except BenchError as e:
        log(f"error: {e}")
        return 2
    finally:
        if srv:
            srv.stop()
        if pg:
            pg.stop()
        if not args.keep and not args.reuse and data.exists():
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
