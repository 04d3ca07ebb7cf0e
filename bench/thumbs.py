#!/usr/bin/python3
"""acervo benchmarks: image thumbnails, acervo-probe --thumbs against vipsthumbnail.

Called by `bench/run thumbs`. See bench/README.md. The same generated 4000x3000 JPEGs
are turned into WebP thumbnails of 300, 800 and 1200 px at quality 80 by both peers on the
same machine in the same run: acervo with one `acervo-probe --thumbs DIR 300,800,1200
FILE` per image (one decode), the peer with three `vipsthumbnail FILE -s N` per image
(one decode each), one process at a time and then two in parallel.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as common  # noqa: E402  (helpers shared with the storage benchmarks)

HERE = common.HERE
REPO = common.REPO
log = common.log
BenchError = common.BenchError

WIDTH, HEIGHT = 4000, 3000
IMAGES = 40
SIZES = (300, 800, 1200)
QUALITY = 80
TARGET_RATIO = 1.3      # acervo images/s over the peer's, one process at a time
CALL_TIMEOUT = 120
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


# --------------------------------------------------------------------------- inputs


def make_inputs(dir_, count):
    """count JPEGs, 4000x3000, quality 90: a plasma fractal (seeded) with a line of text."""
    dir_.mkdir(parents=True, exist_ok=True)
    paths = [dir_ / f"img-{i:02d}.jpg" for i in range(count)]
    missing = [p for p in paths if not p.exists()]
    if not missing:
        log(f"{count} inputs in {dir_.relative_to(REPO)} already there, reusing")
        return paths
    log(f"generating {len(missing)} {WIDTH}x{HEIGHT} JPEGs (ImageMagick plasma, quality 90) ...")
    t0 = time.monotonic()
    errors, lock = [], threading.Lock()

    def one(path):
        seed = int(path.stem.split("-")[1]) + 1
        text = []
        if FONT.exists():
            text = ["-font", str(FONT), "-pointsize", "220", "-fill", "white", "-stroke",
                    "black", "-strokewidth", "4", "-annotate", "+240+2700",
                    f"acervo {seed:02d}"]
        tmp = path.with_suffix(".tmp.jpg")
        r = common.run(["convert", "-size", f"{WIDTH}x{HEIGHT}", "-seed", str(seed), "plasma:",
                        *text, "-quality", "90", str(tmp)], 300)
        if r.returncode != 0 or not tmp.exists():
            with lock:
                errors.append(f"{path.name}: {r.stderr.strip()[-300:]}")
            return
        tmp.rename(path)

    pending = list(missing)

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                path = pending.pop()
            one(path)

    threads = [threading.Thread(target=worker) for _ in range(os.cpu_count() or 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError("input generation failed: " + "; ".join(errors[:3]))
    log(f"generated in {time.monotonic() - t0:.1f} s")
    return paths


# --------------------------------------------------------------------------- runs


def acervo_cmds(probe, image, out):
    return [[str(probe), "--thumbs", str(out), ",".join(map(str, SIZES)), str(image)]]


def peer_cmds(_probe, image, out):
    # vipsthumbnail's -o is a path template; an absolute one is used as is
    return [["vipsthumbnail", str(image), "-s", str(s), "-o",
             f"{out}/thumb_{s}.webp[Q={QUALITY}]"] for s in SIZES]


def run_set(make_cmds, probe, images, out_root, jobs):
    """Thumbnails of every image, `jobs` processes at a time; wall and CPU seconds."""
    if out_root.exists():
        shutil.rmtree(out_root)
    work = []
    for i, image in enumerate(images):
        out = out_root / f"{i:02d}"
        out.mkdir(parents=True)
        work.append((image, out, make_cmds(probe, image, out)))
    pending = list(reversed(work))
    errors, outputs, lock = [], {}, threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending or errors:
                    return
                image, out, cmds = pending.pop()
            for argv in cmds:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=CALL_TIMEOUT,
                                   stdin=subprocess.DEVNULL)
                if r.returncode != 0:
                    with lock:
                        errors.append(f"{' '.join(argv)}: exit {r.returncode}: "
                                      f"{r.stderr.strip()[-300:]}")
                    return
                with lock:
                    outputs[str(out)] = r.stdout

    t = os.times()
    cpu0 = t.children_user + t.children_system
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    t = os.times()
    cpu = t.children_user + t.children_system - cpu0
    if errors:
        raise BenchError(errors[0])
    # every thumbnail is there, is WebP and has the right longest side (or the source's)
    sizes = {s: [] for s in SIZES}
    for image, out, _ in work:
        for s in SIZES:
            f = out / f"thumb_{s}.webp"
            try:
                head = f.read_bytes()[:12]
            except OSError:
                raise BenchError(f"{f} was not written") from None
            if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                raise BenchError(f"{f} is not WebP")
            sizes[s].append(f.stat().st_size)
    return {"wall_s": wall, "cpu_s": cpu, "rate": len(images) / wall, "bytes": sizes,
            "outputs": outputs}


def check_acervo_json(res):
    """acervo's JSON lists the three thumbnails with the expected dimensions."""
    for out, text in res["outputs"].items():
        o = json.loads(text)
        got = [(t["size"], max(t["width"], t["height"])) for t in o["thumbs"]]
        if got != [(s, s) for s in SIZES]:
            raise BenchError(f"unexpected thumbnails in {out}: {got}")


def tool_version(argv):
    try:
        r = common.run(argv, 10)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


# --------------------------------------------------------------------------- report


def kib_per_image(res):
    n = len(next(iter(res["bytes"].values())))
    return sum(sum(v) for v in res["bytes"].values()) / n / 1024


def report(info, args, n, best, runs):
    seq_ratio = best["acervo1"]["rate"] / best["peer1"]["rate"]
    par_ratio = best["acervo2"]["rate"] / best["peer2"]["rate"]
    ok = seq_ratio >= TARGET_RATIO
    date = common.run(["date", "-u"], 10).stdout.strip()
    lines = [f"## {date} — image thumbnails{' (--quick)' if args.quick else ''}", "",
             f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, work dir on "
             f"{info['fs']}, kernel {info['kernel']}",
             f"- acervo: {info['commit']}, binary {info['binary']}; {info['vips']}, libwebp "
             f"{info['webp']}",
             f"- inputs: {n} JPEGs {WIDTH}x{HEIGHT}, quality 90 (ImageMagick plasma + text), "
             f"{info['input_mb']:.1f} MB each on average, in the page cache; thumbnails "
             f"{', '.join(map(str, SIZES))} px (longest side), WebP Q {QUALITY}",
             "",
             "| benchmark | acervo | peer | ratio | target | result |",
             "|---|---|---|---|---|---|",
             f"| 1. images/s, one process at a time, best of {args.runs} | "
             f"{best['acervo1']['rate']:.2f}/s | {best['peer1']['rate']:.2f}/s (vipsthumbnail "
             f"x{len(SIZES)} per image) | {seq_ratio:.2f}x | >= {TARGET_RATIO}x | "
             f"{common.verdict(ok)} |",
             f"| 2. images/s, 2 processes in parallel, best of {args.runs} | "
             f"{best['acervo2']['rate']:.2f}/s | {best['peer2']['rate']:.2f}/s | "
             f"{par_ratio:.2f}x | — | info |",
             "",
             "Details:",
             "",
             "- acervo: `acervo-probe --thumbs DIR " + ",".join(map(str, SIZES)) + " FILE` per "
             "image: one decode (libvips' shrink-on-load for the largest size), the smaller "
             "sizes resized from it in memory, libwebp method 2; peer: `vipsthumbnail FILE -s N "
             f"-o DIR/thumb_N.webp[Q={QUALITY}]` once per size, each decoding the JPEG again, "
             "libvips' webpsave (libwebp method 4)",
             ]
    for key, label in (("acervo1", "acervo, sequential"), ("peer1", "peer, sequential"),
                       ("acervo2", "acervo, 2 parallel"), ("peer2", "peer, 2 parallel")):
        lines.append(f"- {label}: runs " + ", ".join(f"{r['rate']:.2f}" for r in runs[key])
                     + f" images/s; best run {best[key]['wall_s']:.2f} s wall, "
                     f"{best[key]['cpu_s'] / n * 1000:.0f} ms CPU per image")
    lines.append(f"- output per image (all three sizes): acervo {kib_per_image(best['acervo1']):.1f}"
                 f" KiB, peer {kib_per_image(best['peer1']):.1f} KiB (the peer's files also "
                 f"carry a small EXIF block); mean bytes per size: "
                 + ", ".join(f"{s}: acervo {sum(best['acervo1']['bytes'][s]) / n:.0f}, peer "
                             f"{sum(best['peer1']['bytes'][s]) / n:.0f}" for s in SIZES))
    return "\n".join(lines) + "\n", ok


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/run thumbs", description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=IMAGES,
                    help=f"images per run (default {IMAGES}; the inputs are generated once)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each mode, alternating acervo and peer; best kept (default 3)")
    ap.add_argument("--quick", action="store_true", help="10 images, one run of each mode")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the thumbnails in bench/work/thumbs")
    ap.add_argument("--probe", default=os.environ.get("ACERVO_PROBE",
                                                      str(REPO / "build/acervo-probe")),
                    help="acervo-probe binary (or $ACERVO_PROBE; default build/acervo-probe)")
    args = ap.parse_args()
    if args.quick:
        args.images, args.runs = 10, 1
    if args.images < 1 or args.images > IMAGES or args.runs < 1:
        log(f"--images must be 1..{IMAGES} and --runs at least 1")
        return 2
    probe = Path(args.probe)
    if not os.access(probe, os.X_OK):
        log(f"{probe} not found or not executable (run `make build`)")
        return 2
    for tool, pkg in (("vipsthumbnail", "libvips-tools"), ("convert", "imagemagick")):
        if not shutil.which(tool):
            log(f"{tool} is not installed ({pkg}; scripts/install-deps installs it)")
            return 2

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    work = HERE / "work" / "thumbs"
    info = common.machine_info(HERE / "work")
    info["binary"] = common.binary_info(probe)
    info["vips"] = tool_version(["vips", "--version"])
    info["webp"] = tool_version(["pkg-config", "--modversion", "libwebp"])
    try:
        images = make_inputs(HERE / "work" / "thumbs-input", IMAGES)[:args.images]
        info["input_mb"] = sum(p.stat().st_size for p in images) / len(images) / common.MB
        for p in images:  # into the page cache, for both peers
            p.read_bytes()
        # warm-up: the binaries and their libraries in the page cache
        run_set(acervo_cmds, probe, images[:1], work / "warm", 1)
        run_set(peer_cmds, probe, images[:1], work / "warm", 1)
        runs = {k: [] for k in ("acervo1", "peer1", "acervo2", "peer2")}
        for i in range(args.runs):
            for jobs in (1, 2):
                for name, cmds in (("acervo", acervo_cmds), ("peer", peer_cmds)):
                    res = run_set(cmds, probe, images, work / f"{name}{jobs}", jobs)
                    if name == "acervo":
                        check_acervo_json(res)
                    runs[f"{name}{jobs}"].append(res)
                    log(f"run {i + 1}/{args.runs}, {name}, {jobs} at a time: "
                        f"{res['rate']:.2f} images/s ({res['wall_s']:.2f} s)")
    except BenchError as e:
        log(f"ERROR: {e}")
        return 2
    finally:
        if not args.keep and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    best = {k: max(v, key=lambda r: r["rate"]) for k, v in runs.items()}
    text, ok = report(info, args, len(images), best, runs)
    return common.publish(text, ok, args.no_record)


if __name__ == "__main__":
    sys.exit(main())
