"""bench/gen-corpus, the search benchmarks' corpus: deterministic, well-formed, realistic."""

import collections
import json
import subprocess

from conftest import acervod_path


def gen(*args):
    exe = acervod_path().parent / "gen-corpus"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, timeout=120)


def assets(*args):
    r = gen(*args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def test_same_seed_same_corpus_and_pieces_join():
    a = gen("--count", 300).stdout
    assert a == gen("--count", 300).stdout
    assert a != gen("--count", 300, "--seed", 7).stdout
    # --first K writes exactly lines K..N of the full run
    assert a.splitlines()[199:] == gen("--count", 300, "--first", 200).stdout.splitlines()


def test_assets_are_well_formed_and_realistic():
    docs = assets("--count", 2000)
    assert [d["seq"] for d in docs] == list(range(1, 2001))
    assert len({d["id"] for d in docs}) == 2000
    created = [d["created_at"] for d in docs]
    assert created == sorted(created) and created[0] >= "2006" and created[-1] < "2026-11-02"
    langs = collections.Counter(d["lang"] for d in docs)
    assert 0.65 < langs["es"] / 2000 < 0.75
    types = collections.Counter(d["type"] for d in docs)
    assert set(types) == {"video", "image", "audio"}
    segments = 0
    for d in docs:
        assert d["title"] and d["description"] and d["category"]
        assert 2 <= len(d["tags"]) == len(set(d["tags"])) <= 8
        assert any(e["type"] == "place" for e in d["entities"])
        if d["type"] in ("video", "audio"):
            t = d["transcript"]
            assert 12 <= len(t) <= 24 and d["duration_ms"] > 0
            assert [s["i"] for s in t] == list(range(len(t)))
            assert t[0]["start_ms"] == 0 and t[-1]["end_ms"] == d["duration_ms"]
            assert all(s["start_ms"] < s["end_ms"] and 0.6 <= s["confidence"] < 1 for s in t)
            segments += len(t)
        else:
            assert d["transcript"] is None
    assert 9 < segments / 2000 < 13  # some 10 segments per asset: 10M for 1M assets
    # a Zipf vocabulary: function words everywhere, inflected forms for the stemmer
    words = collections.Counter(w for d in docs for w in set(d["description"].split()))
    assert words["de"] > 0.5 * langs["es"]
    assert words["inflación"] and words["inflaciones"] and words["elections"]
    rare = [w for w, c in words.items() if c == 1]
    assert len(rare) > 1000


def test_bad_arguments_are_refused():
    for args in ((), ("--count", 0), ("--count", "x"), ("--count", 5, "--first", 0),
                 ("--bogus",)):
        r = gen(*args)
        assert r.returncode == 2 and b"usage: gen-corpus" in r.stderr, args
