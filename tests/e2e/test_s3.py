"""The S3-compatible endpoint with real clients: boto3, botocore's signer, awscli."""

import base64
import datetime
import hashlib
import os
import secrets
import subprocess

import boto3.s3.transfer
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import (MIB, PART_SIZE, complete, create_asset, error_code, http_status, md5,
                      put_parts, random_bytes, raw_request, s3_client, sha256, sigv4_headers)

AWS = "/usr/bin/aws"


@pytest.fixture(scope="module")
def s3(api, editor):
    return api.s3(editor)


def new_key(prefix="obj"):
    return f"tests/{prefix}-{secrets.token_hex(6)}.bin"


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize("bucket", ["archive", "proxies", "delivery"])
def test_bucket_exists(s3, bucket):
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_head_unknown_bucket_is_404(s3):
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="no-such-bucket")
    assert http_status(e) == 404


def test_get_from_unknown_bucket_is_no_such_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket", Key="tests/x")
    assert error_code(e) == "NoSuchBucket"
    assert http_status(e) == 404


# --------------------------------------------------------------------------- objects


def test_put_get_round_trip(s3):
    key, data = new_key(), random_bytes(300_000)
    put = s3.put_object(Bucket="archive", Key=key, Body=data, ContentType="image/png")
    assert put["ETag"] == f'"{md5(data)}"'
    got = s3.get_object(Bucket="archive", Key=key)
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5(data)}"'
    assert got["ContentType"] == "image/png"
    assert got["ContentLength"] == len(data)


def test_head_object(s3):
    key, data = new_key(), random_bytes(1234)
    s3.put_object(Bucket="proxies", Key=key, Body=data)
    head = s3.head_object(Bucket="proxies", Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{md5(data)}"'
    assert "LastModified" in head


def test_empty_object(s3):
    key = new_key()
    s3.put_object(Bucket="delivery", Key=key, Body=b"")
    got = s3.get_object(Bucket="delivery", Key=key)
    assert got["Body"].read() == b""
    assert got["ETag"] == f'"{md5(b"")}"'


def test_key_with_spaces_and_unicode(s3):
    key, data = f"tests/dir with space/ñandú {secrets.token_hex(3)}+x.bin", random_bytes(100)
    s3.put_object(Bucket="archive", Key=key, Body=data)
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == data


def test_get_missing_key_is_no_such_key(s3):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=new_key("missing"))
    assert error_code(e) == "NoSuchKey"
    assert http_status(e) == 404


def test_head_missing_key_is_404(s3):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="archive", Key=new_key("missing"))
    assert http_status(e) == 404


def test_get_range(s3):
    key, data = new_key(), random_bytes(100_000)
    s3.put_object(Bucket="archive", Key=key, Body=data)
    got = s3.get_object(Bucket="archive", Key=key, Range="bytes=1000-1999")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 1000-1999/{len(data)}"
    assert got["Body"].read() == data[1000:2000]


def test_get_suffix_range(s3):
    key, data = new_key(), random_bytes(10_000)
    s3.put_object(Bucket="archive", Key=key, Body=data)
    assert s3.get_object(Bucket="archive", Key=key, Range="bytes=-10")["Body"].read() == \
        data[-10:]


def test_get_if_none_match_is_304(s3):
    key, data = new_key(), random_bytes(500)
    s3.put_object(Bucket="archive", Key=key, Body=data)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=key, IfNoneMatch=f'"{md5(data)}"')
    assert http_status(e) == 304


def test_get_if_match_mismatch_is_412(s3):
    key = new_key()
    s3.put_object(Bucket="archive", Key=key, Body=b"content")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=key, IfMatch='"00000000000000000000000000000000"')
    assert http_status(e) == 412
    assert error_code(e) == "PreconditionFailed"


def test_get_if_match_with_etag_is_200(s3):
    key, data = new_key(), b"match me"
    s3.put_object(Bucket="archive", Key=key, Body=data)
    got = s3.get_object(Bucket="archive", Key=key, IfMatch=f'"{md5(data)}"')
    assert got["Body"].read() == data


def test_objects_are_immutable(s3):
    key, original = new_key(), random_bytes(2000)
    s3.put_object(Bucket="archive", Key=key, Body=original)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=key, Body=b"replacement")
    assert http_status(e) == 412
    assert error_code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == original


def test_masters_prefix_is_reserved(s3):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=f"masters/{secrets.token_hex(4)}/x.bin", Body=b"x")
    assert error_code(e) == "AccessDenied"
    assert http_status(e) == 403


def test_masters_prefix_is_reserved_for_multipart(s3):
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="archive", Key=f"masters/{secrets.token_hex(4)}/x")
    assert error_code(e) == "AccessDenied"


# --------------------------------------------------------------------------- credentials


def test_viewer_cannot_write(api, viewer):
    with pytest.raises(ClientError) as e:
        api.s3(viewer).put_object(Bucket="archive", Key=new_key("viewer"), Body=b"nope")
    assert error_code(e) == "AccessDenied"
    assert http_status(e) == 403


def test_viewer_cannot_start_multipart(api, viewer):
    with pytest.raises(ClientError) as e:
        api.s3(viewer).create_multipart_upload(Bucket="archive", Key=new_key("viewer"))
    assert error_code(e) == "AccessDenied"


def test_wrong_secret_is_signature_does_not_match(api, editor):
    client = s3_client(api.s3_url, editor.s3_access_key, "x" * 40)
    with pytest.raises(ClientError) as e:
        client.head_bucket(Bucket="archive")
    assert http_status(e) == 403
    with pytest.raises(ClientError) as e:
        client.get_object(Bucket="archive", Key="tests/anything")
    assert error_code(e) == "SignatureDoesNotMatch"


def test_unknown_access_key_is_invalid_access_key_id(api):
    client = s3_client(api.s3_url, "AKIA" + secrets.token_hex(8).upper(), "y" * 40)
    with pytest.raises(ClientError) as e:
        client.get_object(Bucket="archive", Key="tests/anything")
    assert error_code(e) == "InvalidAccessKeyId"
    assert http_status(e) == 403


def test_anonymous_request_is_access_denied(api):
    r = requests.get(f"{api.s3_url}/archive/tests/anything", timeout=30)
    assert r.status_code == 403
    assert b"AccessDenied" in r.content


@pytest.mark.parametrize("hours", [1, -1])
def test_skewed_clock_is_request_time_too_skewed(api, editor, hours):
    url = f"{api.s3_url}/archive/tests/skew.bin"
    headers = sigv4_headers("GET", url, editor, skew=datetime.timedelta(hours=hours))
    r = requests.get(url, headers=headers, timeout=30)
    assert r.status_code == 403
    assert b"<Code>RequestTimeTooSkewed</Code>" in r.content


def test_hand_signed_request_is_accepted(api, editor):
    """The control for the skew test: the same signer with the right clock works."""
    key, data = new_key("signed"), random_bytes(64)
    url = f"{api.s3_url}/archive/{key}"
    headers = sigv4_headers("PUT", url, editor, body=data)
    assert requests.put(url, data=data, headers=headers, timeout=30).status_code == 200
    headers = sigv4_headers("GET", url, editor)
    assert requests.get(url, headers=headers, timeout=30).content == data


def test_tampered_body_is_rejected(api, editor):
    """x-amz-content-sha256 is signed: a different body than the one signed fails."""
    key = new_key("tamper")
    url = f"{api.s3_url}/archive/{key}"
    headers = sigv4_headers("PUT", url, editor, body=b"signed body")
    status, _, body = raw_request("PUT", url, headers=headers, body=b"other body!")
    assert status in (400, 403), body
    status, _, _ = raw_request("GET", url, headers=sigv4_headers("GET", url, editor))
    assert status == 404


def test_content_md5_mismatch_is_bad_digest(s3):
    key = new_key("md5")
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=key, Body=b"the real body", ContentMD5=wrong)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="archive", Key=key)
    assert http_status(e) == 404


def test_presigned_get_and_put(s3):
    key, data = new_key("presigned"), random_bytes(5000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "archive", "Key": key},
                                        ExpiresIn=300)
    assert requests.put(put_url, data=data, timeout=30).status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "archive", "Key": key},
                                        ExpiresIn=300)
    assert requests.get(get_url, timeout=30).content == data


# --------------------------------------------------------------------------- multipart


def start_upload(s3, key):
    return s3.create_multipart_upload(Bucket="archive", Key=key)["UploadId"]


def upload_parts(s3, key, upload_id, chunks):
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        etag = s3.upload_part(Bucket="archive", Key=key, UploadId=upload_id, PartNumber=n,
                              Body=chunk)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    return parts


def test_multipart_round_trip(s3):
    key = new_key("mpu")
    chunks = [random_bytes(PART_SIZE), random_bytes(PART_SIZE), random_bytes(MIB)]
    upload_id = start_upload(s3, key)
    parts = upload_parts(s3, key, upload_id, chunks)
    done = s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    expected_etag = md5(b"".join(bytes.fromhex(md5(c)) for c in chunks)) + "-3"
    assert done["ETag"].strip('"') == expected_etag
    got = s3.get_object(Bucket="archive", Key=key)
    assert sha256(got["Body"].read()) == sha256(b"".join(chunks))
    assert got["ETag"].strip('"') == expected_etag


def test_list_parts(s3):
    key = new_key("parts")
    upload_id = start_upload(s3, key)
    chunks = [random_bytes(PART_SIZE), random_bytes(1000)]
    upload_parts(s3, key, upload_id, chunks)
    listed = s3.list_parts(Bucket="archive", Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"].strip('"')) for p in listed] == \
        [(1, PART_SIZE, md5(chunks[0])), (2, 1000, md5(chunks[1]))]
    s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id)


def test_reuploading_a_part_replaces_it(s3):
    key = new_key("replace")
    upload_id = start_upload(s3, key)
    upload_parts(s3, key, upload_id, [b"first version"])
    parts = upload_parts(s3, key, upload_id, [b"second version"])
    s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"second version"


def test_list_multipart_uploads(s3):
    key = new_key("listed")
    upload_id = start_upload(s3, key)
    uploads = s3.list_multipart_uploads(Bucket="archive").get("Uploads", [])
    assert (key, upload_id) in {(u["Key"], u["UploadId"]) for u in uploads}
    s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id)
    uploads = s3.list_multipart_uploads(Bucket="archive").get("Uploads", [])
    assert upload_id not in {u["UploadId"] for u in uploads}


def test_abort_then_list_parts_is_no_such_upload(s3):
    key = new_key("abort")
    upload_id = start_upload(s3, key)
    upload_parts(s3, key, upload_id, [b"x" * 100])
    s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="archive", Key=key, UploadId=upload_id)
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=key)
    assert error_code(e) == "NoSuchKey"


def test_upload_part_to_unknown_upload_is_no_such_upload(s3):
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="archive", Key=new_key(), UploadId=secrets.token_hex(16),
                       PartNumber=1, Body=b"x")
    assert error_code(e) == "NoSuchUpload"
    assert http_status(e) == 404


@pytest.mark.parametrize("number", [0, 10001])
def test_part_number_out_of_range_is_rejected(s3, number):
    key = new_key("partno")
    upload_id = start_upload(s3, key)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="archive", Key=key, UploadId=upload_id, PartNumber=number,
                       Body=b"x")
    assert http_status(e) == 400
    s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id)


def test_complete_with_wrong_etag_is_invalid_part(s3):
    key = new_key("badetag")
    upload_id = start_upload(s3, key)
    upload_parts(s3, key, upload_id, [b"only part"])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="archive", Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
    assert error_code(e) == "InvalidPart"
    assert http_status(e) == 400
    # The upload survives a failed complete.
    assert len(s3.list_parts(Bucket="archive", Key=key, UploadId=upload_id)["Parts"]) == 1


def test_complete_with_missing_part_is_invalid_part(s3):
    key = new_key("missingpart")
    upload_id = start_upload(s3, key)
    parts = upload_parts(s3, key, upload_id, [random_bytes(PART_SIZE)])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="archive", Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": parts + [{"PartNumber": 2, "ETag": '"' + "1" * 32 + '"'}]})
    assert error_code(e) == "InvalidPart"


def test_complete_out_of_order_is_invalid_part_order(s3):
    key = new_key("order")
    upload_id = start_upload(s3, key)
    parts = upload_parts(s3, key, upload_id, [random_bytes(PART_SIZE), b"tail"])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts[::-1]})
    assert error_code(e) == "InvalidPartOrder"
    assert http_status(e) == 400


def test_complete_with_small_part_is_entity_too_small(s3):
    key = new_key("small")
    upload_id = start_upload(s3, key)
    parts = upload_parts(s3, key, upload_id, [random_bytes(MIB), random_bytes(MIB)])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert error_code(e) == "EntityTooSmall"


def test_complete_unknown_upload_is_no_such_upload(s3):
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="archive", Key=new_key(), UploadId=secrets.token_hex(16),
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
    assert error_code(e) == "NoSuchUpload"


def test_complete_onto_existing_key_is_refused(s3):
    key = new_key("exists")
    s3.put_object(Bucket="archive", Key=key, Body=b"first")
    upload_id = start_upload(s3, key)
    parts = upload_parts(s3, key, upload_id, [b"second"])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert http_status(e) == 412
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"first"


# --------------------------------------------------------------------------- transfer manager


def test_boto3_transfer_round_trip(s3, tmp_path):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(random_bytes(24 * MIB + 12345))
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=PART_SIZE,
                                              multipart_chunksize=PART_SIZE, max_concurrency=4)
    key = new_key("transfer")
    s3.upload_file(str(src), "archive", key, Config=config)
    assert s3.head_object(Bucket="archive", Key=key)["ETag"].strip('"').endswith("-5")
    s3.download_file("archive", key, str(dst), Config=config)
    assert sha256(dst.read_bytes()) == sha256(src.read_bytes())


# --------------------------------------------------------------------------- awscli


@pytest.fixture
def aws_env(api, editor, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n  multipart_threshold = 5MB\n"
                      "  multipart_chunksize = 5MB\n  addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_CONFIG_FILE=str(config),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_ACCESS_KEY_ID=editor.s3_access_key,
               AWS_SECRET_ACCESS_KEY=editor.s3_secret_key, AWS_DEFAULT_REGION="us-east-1",
               AWS_PAGER="")
    return env


def aws(env, api, *args):
    proc = subprocess.run([AWS, "--endpoint-url", api.s3_url, *args], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"aws {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_awscli_cp_round_trip(api, s3, aws_env, tmp_path):
    src, dst = tmp_path / "up.bin", tmp_path / "down.bin"
    src.write_bytes(random_bytes(12 * MIB + 3))
    key = new_key("awscli")
    aws(aws_env, api, "s3", "cp", str(src), f"s3://archive/{key}")
    etag = s3.head_object(Bucket="archive", Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), f"awscli did not use multipart (ETag {etag})"
    aws(aws_env, api, "s3", "cp", f"s3://archive/{key}", str(dst))
    assert sha256(dst.read_bytes()) == sha256(src.read_bytes())


def test_awscli_s3api_head_object(api, s3, aws_env):
    key, data = new_key("s3api"), random_bytes(777)
    s3.put_object(Bucket="archive", Key=key, Body=data)
    out = aws(aws_env, api, "s3api", "head-object", "--bucket", "archive", "--key", key)
    assert '"ContentLength": 777' in out.stdout


# --------------------------------------------------------------------------- acervo's own keys


@pytest.mark.parametrize("key", ["masters", "uploads"])
def test_bare_reserved_names_are_reserved(s3, key):
    """An object named "masters" would block every masters/... key of the REST flow."""
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=key, Body=b"x")
    assert error_code(e) == "AccessDenied"


def test_rest_upload_parts_belong_to_their_owner(api, admin_token, editor):
    """Another editor can neither send parts to, abort, nor see someone's REST upload."""
    data = random_bytes(1000)
    created = create_asset(api, editor.token, data)
    key = f"uploads/{created['assetId']}/original.mp4"
    other = api.make_key(admin_token, "editor", name=f"other-{secrets.token_hex(3)}")
    s3_other = api.s3(other)
    with pytest.raises(ClientError) as e:
        s3_other.upload_part(Bucket="archive", Key=key, UploadId=created["uploadId"],
                             PartNumber=1, Body=data)
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3_other.abort_multipart_upload(Bucket="archive", Key=key,
                                        UploadId=created["uploadId"])
    assert error_code(e) == "AccessDenied"
    listed = s3_other.list_multipart_uploads(Bucket="archive").get("Uploads", [])
    assert created["uploadId"] not in {u["UploadId"] for u in listed}
    # the owner's presigned part URL still works, and the upload completes
    parts = put_parts(created, data)
    assert complete(api, editor.token, created["assetId"], parts).status_code == 202


def test_complete_body_must_match_its_signed_hash(api, editor, s3):
    """x-amz-content-sha256 covers the CompleteMultipartUpload body: a different part list
    than the one signed is refused and the upload stays."""
    key = new_key("complete-sig")
    up = s3.create_multipart_upload(Bucket="archive", Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket="archive", Key=key, UploadId=up, PartNumber=n,
                            Body=random_bytes(PART_SIZE if n == 1 else 1000))["ETag"]
             for n in (1, 2)]

    def body(parts):
        inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
                        for n, e in parts)
        return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()

    url = f"{api.s3_url}/archive/{key}?uploadId={up}"
    signed = body([(1, etags[0]), (2, etags[1])])
    headers = sigv4_headers("POST", url, editor, body=signed)
    status, _, text = raw_request("POST", url, headers=headers, body=body([(1, etags[0])]))
    assert status == 400 and b"XAmzContentSHA256Mismatch" in text, text
    status, _, text = raw_request("POST", url, headers=headers, body=signed)
    assert status == 200, text
    assert s3.head_object(Bucket="archive", Key=key)["ContentLength"] == PART_SIZE + 1000
