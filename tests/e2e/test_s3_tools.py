"""The S3 endpoint under the tools people use every day: rclone, s3cmd and the awscli,
each configured through files in the test's temp dir (path-style, http, us-east-1), with
files above their multipart thresholds. Objects are immutable through acervo's S3, so
the tools write new keys only (a second sync of the same tree must find nothing to do)."""

import concurrent.futures
import hashlib
import os
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import MIB, random_bytes

RCLONE = shutil.which("rclone") or "/usr/bin/rclone"
S3CMD = shutil.which("s3cmd") or "/usr/bin/s3cmd"
AWS = "/usr/bin/aws"
TOOL_TIMEOUT = 600  # only against hanging forever; CI is slow under sanitizers


@pytest.fixture(scope="module")
def s3(api, editor):
    return api.s3(editor)


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root):
    """{relative path: md5} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = md5_file(path)
    return out


@pytest.fixture
def local_tree(tmp_path):
    """A tree with a 40 MiB file (multipart for every tool here), folders and odd names."""
    root = tmp_path / "tree"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "big.bin").write_bytes(random_bytes(40 * MIB + 123))
    (root / "sub" / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / "deep" / "b.txt").write_bytes(b"beta\n")
    (root / "name with spaces & ñ.txt").write_bytes(random_bytes(1000))
    # files older than their upload, as a tree being synced is: an object's LastModified
    # has whole seconds, so a file written in the second of its upload looks newer than
    # its copy and a second sync would send it again (refused: objects are immutable)
    past = time.time() - 60
    for f in root.rglob("*"):
        os.utime(f, (past, past))
    os.utime(root / "sub" / "a.txt", (1_600_000_000, 1_600_000_000))
    return root


@pytest.fixture
def tool_env(api, editor, tmp_path):
    """The environment and config files of the three tools, all in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    host = api.s3_url.split("://", 1)[1]
    rclone_conf = tmp_path / "rclone.conf"
    rclone_conf.write_text(
        "[acervo]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {editor.s3_access_key}\nsecret_access_key = {editor.s3_secret_key}\n"
        f"endpoint = {api.s3_url}\nregion = us-east-1\nforce_path_style = true\n")
    s3cfg = tmp_path / "s3cfg"
    s3cfg.write_text(
        "[default]\n"
        f"access_key = {editor.s3_access_key}\nsecret_key = {editor.s3_secret_key}\n"
        f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
        "bucket_location = us-east-1\nsignature_v2 = False\nprogress_meter = False\n")
    aws_conf = tmp_path / "aws-config"
    aws_conf.write_text("[default]\ns3 =\n  multipart_threshold = 5MB\n"
                        "  multipart_chunksize = 5MB\n  addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(HOME=str(home), RCLONE_CONFIG=str(rclone_conf), AWS_CONFIG_FILE=str(aws_conf),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_ACCESS_KEY_ID=editor.s3_access_key,
               AWS_SECRET_ACCESS_KEY=editor.s3_secret_key, AWS_DEFAULT_REGION="us-east-1",
               AWS_PAGER="")
    return {"env": env, "s3cfg": str(s3cfg)}


def run(tool_env, *argv):
    proc = subprocess.run([str(a) for a in argv], env=tool_env["env"], capture_output=True,
                          text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def rclone(tool_env, *args):
    return run(tool_env, RCLONE, "--retries", "1", "--low-level-retries", "1", *args)


def s3cmd(tool_env, *args):
    return run(tool_env, S3CMD, "-c", tool_env["s3cfg"], *args)


def aws(tool_env, api, *args):
    return run(tool_env, AWS, "--endpoint-url", api.s3_url, *args)


def prefix(tool):
    return f"tools-{tool}-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------- rclone


RCLONE_MULTIPART = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")


def test_rclone_copy_check_and_back(s3, tool_env, local_tree, tmp_path):
    """rclone creates the bucket first (409 BucketAlreadyOwnedByYou is its go-ahead),
    uploads the big file in parts (completing with Go's &#34; ETags), keeps modification
    times and MD5s in metadata, and finds everything equal on check and on a second copy."""
    p = prefix("rclone")
    remote = f"acervo:archive/{p}"
    rclone(tool_env, "copy", *RCLONE_MULTIPART, local_tree, remote)
    etag = s3.head_object(Bucket="archive", Key=f"{p}/big.bin")["ETag"].strip('"')
    assert etag.endswith("-9"), f"rclone did not upload in 5 MiB parts (ETag {etag})"
    head = s3.head_object(Bucket="archive", Key=f"{p}/sub/a.txt")
    assert head["Metadata"]["mtime"].startswith("1600000000")

    check = rclone(tool_env, "check", local_tree, remote)
    assert "0 differences found" in check.stderr
    md5s = rclone(tool_env, "md5sum", remote).stdout
    for path, digest in tree_files(local_tree).items():
        assert f"{digest}  {path}" in md5s  # the multipart one from its metadata

    listed = rclone(tool_env, "lsf", "-R", remote).stdout.split("\n")
    assert {"big.bin", "sub/", "sub/a.txt", "sub/deep/", "sub/deep/b.txt"} <= set(listed)
    top = set(rclone(tool_env, "lsf", remote).stdout.split("\n")) - {""}
    assert top == {"big.bin", "name with spaces & ñ.txt", "sub/"}
    assert "sub" in rclone(tool_env, "lsd", remote).stdout

    again = rclone(tool_env, "copy", "-v", *RCLONE_MULTIPART, local_tree, remote)
    assert "Copied" not in again.stderr, again.stderr

    down = tmp_path / "down"
    rclone(tool_env, "copy", remote, down)
    assert tree_files(down) == tree_files(local_tree)
    assert int(os.stat(down / "sub" / "a.txt").st_mtime) == 1_600_000_000


def test_rclone_sync_to_a_new_prefix(tool_env, local_tree):
    remote = f"acervo:archive/{prefix('rclone-sync')}"
    rclone(tool_env, "sync", *RCLONE_MULTIPART, local_tree, remote)
    rclone(tool_env, "check", local_tree, remote)
    again = rclone(tool_env, "sync", "-v", local_tree, remote)
    assert "Copied" not in again.stderr


# --------------------------------------------------------------------------- s3cmd


def test_s3cmd_put_ls_get_sync(s3, tool_env, local_tree, tmp_path):
    p = prefix("s3cmd")
    s3cmd(tool_env, "put", "--multipart-chunk-size-mb=5", local_tree / "big.bin",
          f"s3://archive/{p}/big.bin")
    etag = s3.head_object(Bucket="archive", Key=f"{p}/big.bin")["ETag"].strip('"')
    assert etag.endswith("-9"), f"s3cmd did not upload in parts (ETag {etag})"
    s3cmd(tool_env, "put", "-r", local_tree / "sub", f"s3://archive/{p}/")

    top = s3cmd(tool_env, "ls", f"s3://archive/{p}/").stdout
    assert f"DIR  s3://archive/{p}/sub/" in top and f"s3://archive/{p}/big.bin" in top
    assert "a.txt" not in top  # one level only: the delimiter at work
    everything = s3cmd(tool_env, "ls", "-r", f"s3://archive/{p}/").stdout
    assert everything.count(f"s3://archive/{p}/") == 3

    info = s3cmd(tool_env, "info", f"s3://archive/{p}/big.bin").stdout
    assert "FULL_CONTROL" in info and "s3cmd-attrs" in info
    assert "us-east-1" in s3cmd(tool_env, "info", "s3://archive").stdout

    down = tmp_path / "down"
    down.mkdir()
    s3cmd(tool_env, "get", "-r", f"s3://archive/{p}/", f"{down}/")
    assert md5_file(down / "big.bin") == md5_file(local_tree / "big.bin")
    assert md5_file(down / "sub" / "deep" / "b.txt") == md5_file(local_tree / "sub/deep/b.txt")

    target = f"s3://archive/{prefix('s3cmd-sync')}/"
    s3cmd(tool_env, "sync", "--multipart-chunk-size-mb=5", f"{local_tree}/", target)
    again = s3cmd(tool_env, "sync", "--multipart-chunk-size-mb=5", f"{local_tree}/", target)
    assert "upload:" not in again.stdout, again.stdout
    du = s3cmd(tool_env, "du", target).stdout
    assert f"{sum(f.stat().st_size for f in local_tree.rglob('*') if f.is_file())}" in du


def test_s3cmd_lists_1005_keys_recursively(s3, tool_env):
    """s3cmd pages ListObjects V1 by marker: past 1,000 keys it must get the next page,
    not the first again."""
    p = prefix("s3cmd-many")
    keys = [f"{p}/f{i % 7}/k{i:04d}" for i in range(1005)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="archive", Key=k, Body=b"x"), keys))
    lines = s3cmd(tool_env, "ls", "-r", f"s3://archive/{p}/").stdout.strip().split("\n")
    assert sorted(line.split()[-1] for line in lines) == sorted(f"s3://archive/{k}" for k in keys)


# --------------------------------------------------------------------------- awscli


def test_awscli_ls_sync_and_copy(api, s3, tool_env, local_tree, tmp_path):
    p = prefix("awscli")
    aws(tool_env, api, "s3", "sync", "--only-show-errors", local_tree, f"s3://archive/{p}/")
    top = aws(tool_env, api, "s3", "ls", f"s3://archive/{p}/").stdout
    assert "PRE sub/" in top and "big.bin" in top and "a.txt" not in top
    deep = aws(tool_env, api, "s3", "ls", f"s3://archive/{p}/sub/").stdout
    assert "PRE deep/" in deep and "a.txt" in deep
    again = aws(tool_env, api, "s3", "sync", local_tree, f"s3://archive/{p}/")
    assert "upload:" not in again.stdout

    # a copy inside the store, in parts (UploadPartCopy) above the threshold
    aws(tool_env, api, "s3", "cp", "--only-show-errors", f"s3://archive/{p}/big.bin",
        f"s3://archive/{p}-copy/big.bin")
    copy = s3.head_object(Bucket="archive", Key=f"{p}-copy/big.bin")
    assert copy["ContentLength"] == (local_tree / "big.bin").stat().st_size

    down = tmp_path / "down"
    aws(tool_env, api, "s3", "sync", "--only-show-errors", f"s3://archive/{p}/", down)
    assert tree_files(down) == tree_files(local_tree)
    aws(tool_env, api, "s3", "cp", "--only-show-errors", f"s3://archive/{p}-copy/big.bin",
        tmp_path / "copy.bin")
    assert md5_file(tmp_path / "copy.bin") == md5_file(local_tree / "big.bin")

    location = aws(tool_env, api, "s3api", "get-bucket-location", "--bucket", "archive").stdout
    assert '"LocationConstraint": null' in location
