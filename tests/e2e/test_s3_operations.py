"""What the S3 endpoint answers beyond plain objects: sub-resources, CreateBucket, copies,
object metadata, listings (V1, V2, delimiters, markers), CompleteMultipartUpload's XML,
concurrent completions and the errors clients need to understand (SigV2, key clashes,
keys that are not UTF-8). boto3 and botocore's signer, with raw requests where boto3
would hide the wire."""

import concurrent.futures
import datetime
import os
import secrets
import threading
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import (PART_SIZE, Api, error_code, http_status, md5, random_bytes, raw_request,
                      sha256, sigv4_headers)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(scope="module")
def s3(api, editor):
    return api.s3(editor)


def new_key(prefix="obj"):
    return f"ops/{prefix}-{secrets.token_hex(6)}.bin"


def signed(api, editor, method, path, query="", body=b"", headers=None):
    """A request signed with SigV4 exactly as given (path percent-encoded by the caller)."""
    url = f"{api.s3_url}{path}" + (f"?{query}" if query else "")
    hdrs = sigv4_headers(method, url, editor, body=body, headers=headers)
    return raw_request(method, url, headers=hdrs, body=body)


def xml_error(body):
    root = ET.fromstring(body)
    return root.findtext("Code"), root.findtext("Message")


def assert_absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert http_status(e) == 404


# --------------------------------------------------------------------------- sub-resources


@pytest.mark.parametrize("sub", ["acl", "tagging", "retention", "legal-hold", "attributes",
                                 "torrent"])
def test_object_sub_resource_get_is_never_the_object(api, editor, s3, sub):
    key, data = new_key("sub"), b"OBJECT BYTES " * 10
    s3.put_object(Bucket="archive", Key=key, Body=data)
    status, _, body = signed(api, editor, "GET", f"/archive/{key}", sub)
    assert data not in body
    if sub == "acl":
        assert status == 200
        root = ET.fromstring(body)
        assert root.tag == f"{NS}AccessControlPolicy"
        assert root.find(f".//{NS}Permission").text == "FULL_CONTROL"
    elif sub == "tagging":
        assert status == 200
        assert ET.fromstring(body).find(f"{NS}TagSet") is not None
    else:
        assert status == 501, body
        assert xml_error(body)[0] == "NotImplemented"


def test_boto3_reads_object_acl_and_tags(s3):
    key = new_key("acl")
    s3.put_object(Bucket="archive", Key=key, Body=b"x")
    acl = s3.get_object_acl(Bucket="archive", Key=key)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert s3.get_object_tagging(Bucket="archive", Key=key)["TagSet"] == []
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket="archive", Key=new_key("none"))
    assert error_code(e) == "NoSuchKey"


def test_bucket_location_versioning_and_absent_configurations(s3):
    assert s3.get_bucket_location(Bucket="archive")["LocationConstraint"] is None
    versioning = s3.get_bucket_versioning(Bucket="archive")
    assert "Status" not in versioning
    assert s3.get_bucket_acl(Bucket="proxies")["Grants"][0]["Permission"] == "FULL_CONTROL"
    absent = {
        s3.get_bucket_policy: "NoSuchBucketPolicy",
        s3.get_bucket_cors: "NoSuchCORSConfiguration",
        s3.get_bucket_lifecycle_configuration: "NoSuchLifecycleConfiguration",
        s3.get_bucket_website: "NoSuchWebsiteConfiguration",
        s3.get_bucket_tagging: "NoSuchTagSet",
        s3.get_bucket_encryption: "ServerSideEncryptionConfigurationNotFoundError",
    }
    for call, code in absent.items():
        with pytest.raises(ClientError) as e:
            call(Bucket="archive")
        assert error_code(e) == code
        assert http_status(e) == 404


def test_bucket_sub_resources_are_not_listings(api, editor, s3):
    s3.put_object(Bucket="archive", Key=new_key("listed"), Body=b"x")
    for sub in ("location", "versioning", "policy", "logging", "versions", "uploads"):
        status, _, body = signed(api, editor, "GET", "/archive", sub)
        assert b"<ListBucketResult" not in body, sub


@pytest.mark.parametrize("sub,body", [
    ("tagging", b'<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>'),
    ("acl", b""),
    ("retention", b"<Retention><Mode>GOVERNANCE</Mode></Retention>"),
    ("legal-hold", b"<LegalHold><Status>ON</Status></LegalHold>"),
    ("renameObject", b""),
])
def test_put_with_sub_resource_writes_nothing(api, editor, s3, sub, body):
    key = new_key("put-sub")
    status, _, answer = signed(api, editor, "PUT", f"/archive/{key}", sub, body=body)
    assert status == 501, answer
    assert xml_error(answer)[0] == "NotImplemented"
    assert_absent(s3, "archive", key)
    # and an object that exists is not replaced by one
    s3.put_object(Bucket="archive", Key=key, Body=b"original")
    status, _, _ = signed(api, editor, "PUT", f"/archive/{key}", sub, body=body)
    assert status == 501
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"original"


def test_unknown_bare_sub_resource_is_not_implemented(api, editor, s3):
    key = new_key("unknown")
    s3.put_object(Bucket="archive", Key=key, Body=b"secret bytes")
    status, _, body = signed(api, editor, "GET", f"/archive/{key}", "frobnicate")
    assert status == 501 and b"secret bytes" not in body
    status, _, body = signed(api, editor, "PUT", f"/archive/{key}-2", "frobnicate", body=b"x")
    assert status == 501
    assert_absent(s3, "archive", f"{key}-2")
    # parameters S3 ignores (with a value) stay ignored
    status, _, body = signed(api, editor, "GET", f"/archive/{key}", "x-id=GetObject&foo=bar")
    assert status == 200 and body == b"secret bytes"


def test_delete_objects_is_refused(s3):
    key = new_key("keep")
    s3.put_object(Bucket="archive", Key=key, Body=b"kept")
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="archive", Delete={"Objects": [{"Key": key}]})
    assert http_status(e) == 501
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="archive", Key=key)
    assert http_status(e) == 405
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"kept"


def test_version_ids(s3):
    key = new_key("version")
    s3.put_object(Bucket="archive", Key=key, Body=b"v")
    assert s3.get_object(Bucket="archive", Key=key, VersionId="null")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=key, VersionId="3HL4kqtJlcpXroDTDmJ")
    assert error_code(e) == "InvalidArgument"


def test_get_by_part_number(s3):
    whole, parted = new_key("whole"), new_key("parted")
    s3.put_object(Bucket="archive", Key=whole, Body=b"one piece")
    assert s3.get_object(Bucket="archive", Key=whole, PartNumber=1)["Body"].read() == \
        b"one piece"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=whole, PartNumber=2)
    assert error_code(e) == "InvalidPartNumber" and http_status(e) == 416
    up, etags = start_upload_with_parts(s3, parted, [random_bytes(PART_SIZE), b"tail"])
    s3.complete_multipart_upload(Bucket="archive", Key=parted, UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=parted, PartNumber=1)
    assert http_status(e) == 501  # where parts began is not kept: never a wrong answer


# --------------------------------------------------------------------------- buckets


def test_create_own_bucket_is_already_owned(s3):
    for bucket in ("archive", "proxies", "delivery"):
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=bucket)
        assert error_code(e) == "BucketAlreadyOwnedByYou"
        assert http_status(e) == 409


def test_create_other_bucket_is_refused(s3):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=f"new-{secrets.token_hex(4)}")
    assert error_code(e) == "AccessDenied"
    assert "archive, proxies, delivery" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Not_A_Bucket")
    assert error_code(e) == "InvalidBucketName"


def test_create_bucket_with_a_configuration_body(api, editor):
    body = (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>")
    status, _, answer = signed(api, editor, "PUT", "/delivery", body=body,
                               headers={"x-amz-acl": "private"})
    assert status == 409 and xml_error(answer)[0] == "BucketAlreadyOwnedByYou"


# --------------------------------------------------------------------------- metadata


META = {"mtime": "1700000000.123456789", "md5chksum": "kXk9WjNwI6H6Ld5x0Wq7Yw==",
        "camel-case": "Value With Spaces", "empty": ""}


def test_metadata_round_trip_put(s3):
    key, data = new_key("meta"), random_bytes(1000)
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    s3.put_object(Bucket="archive", Key=key, Body=data, Metadata=META,
                  ContentType="video/mp4", CacheControl="max-age=60, public",
                  ContentDisposition='attachment; filename="clip.mp4"',
                  ContentEncoding="identity", ContentLanguage="es-AR", Expires=expires)
    for got in (s3.head_object(Bucket="archive", Key=key),
                s3.get_object(Bucket="archive", Key=key)):
        assert got["Metadata"] == META
        assert got["ContentType"] == "video/mp4"
        assert got["CacheControl"] == "max-age=60, public"
        assert got["ContentDisposition"] == 'attachment; filename="clip.mp4"'
        assert got["ContentEncoding"] == "identity"
        assert got["ContentLanguage"] == "es-AR"
        assert got["Expires"] == expires
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == data


def test_metadata_round_trip_multipart(s3):
    key = new_key("meta-mpu")
    up = s3.create_multipart_upload(Bucket="archive", Key=key, Metadata={"source": "camera 2"},
                                    ContentType="audio/wav", CacheControl="no-cache")["UploadId"]
    chunks = [random_bytes(PART_SIZE), random_bytes(1000)]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="archive", Key=key, UploadId=up,
                                                      PartNumber=n, Body=c)["ETag"]}
             for n, c in enumerate(chunks, start=1)]
    s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=up,
                                 MultipartUpload={"Parts": parts})
    head = s3.head_object(Bucket="archive", Key=key)
    assert head["Metadata"] == {"source": "camera 2"}
    assert head["ContentType"] == "audio/wav"
    assert head["CacheControl"] == "no-cache"


@pytest.mark.local
def test_metadata_survives_a_restart(fresh_server):
    srv = fresh_server()
    api = Api(srv.base_url, srv.s3_url)
    s3 = api.s3(api.make_key(srv.admin_token, "editor"))
    s3.put_object(Bucket="archive", Key="m/x", Body=b"x", Metadata={"a": "1"})
    srv.restart()
    assert s3.head_object(Bucket="archive", Key="m/x")["Metadata"] == {"a": "1"}


def test_non_ascii_metadata_comes_back_as_rfc2047(api, s3):
    key = new_key("utf8-meta")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "archive", "Key": key},
                                    ExpiresIn=300)
    r = requests.put(url, data=b"x", headers={"x-amz-meta-city": "São Paulo".encode()},
                     timeout=30)
    assert r.status_code == 200, r.text
    got = requests.get(s3.generate_presigned_url(
        "get_object", Params={"Bucket": "archive", "Key": key}, ExpiresIn=300), timeout=30)
    assert got.headers["x-amz-meta-city"] == "=?UTF-8?B?U8OjbyBQYXVsbw==?="


def test_metadata_over_2kib_is_refused(s3):
    key = new_key("meta-big")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=key, Body=b"x",
                      Metadata={"a": "v" * 1024, "b": "v" * 1024})
    assert error_code(e) == "MetadataTooLarge"
    assert_absent(s3, "archive", key)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="archive", Key=key, Metadata={"a": "v" * 2100})
    assert error_code(e) == "MetadataTooLarge"
    # just under the limit is fine
    s3.put_object(Bucket="archive", Key=key, Body=b"x", Metadata={"a": "v" * 2047})
    assert s3.head_object(Bucket="archive", Key=key)["Metadata"] == {"a": "v" * 2047}


def test_response_overrides_on_presigned_get(s3):
    key = new_key("override")
    s3.put_object(Bucket="archive", Key=key, Body=b"x", ContentType="text/plain",
                  CacheControl="no-cache")
    url = s3.generate_presigned_url("get_object", ExpiresIn=300, Params={
        "Bucket": "archive", "Key": key, "ResponseContentType": "image/png",
        "ResponseContentDisposition": "attachment; filename=x.png",
        "ResponseCacheControl": "max-age=5", "ResponseContentLanguage": "pt",
        "ResponseExpires": datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)})
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"] == "attachment; filename=x.png"
    assert r.headers["Cache-Control"] == "max-age=5"
    assert r.headers["Content-Language"] == "pt"
    assert r.headers["Expires"].startswith("Wed, 01 Jan 2031")


@pytest.mark.parametrize("extra", [
    {"ServerSideEncryption": "AES256"},
    {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"},
    {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
    {"StorageClass": "GLACIER"},
    {"ACL": "public-read"},
    {"Tagging": "a=b"},
    {"ObjectLockMode": "GOVERNANCE",
     "ObjectLockRetainUntilDate": datetime.datetime(2030, 1, 1)},
])
def test_headers_acervo_cannot_honour_are_refused(s3, extra):
    key = new_key("refused")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=key, Body=b"x", **extra)
    assert error_code(e) == "NotImplemented"
    assert http_status(e) == 501
    assert_absent(s3, "archive", key)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="archive", Key=key, **extra)
    assert error_code(e) == "NotImplemented"


def test_headers_asking_for_what_acervo_does_are_accepted(s3):
    key = new_key("accepted")
    s3.put_object(Bucket="archive", Key=key, Body=b"x", StorageClass="STANDARD", ACL="private")
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"x"


def test_sse_c_read_is_refused(s3):
    key = new_key("ssec")
    s3.put_object(Bucket="archive", Key=key, Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="archive", Key=key, SSECustomerAlgorithm="AES256",
                      SSECustomerKey="k" * 32)
    assert http_status(e) == 501


@pytest.mark.local
def test_objects_stored_before_metadata_still_read(server, s3):
    """An object whose xattr is the format of before (no h= lines) reads and lists."""
    key = f"ops/legacy-{secrets.token_hex(4)}/obj.bin"
    path = server.data_dir / "objects" / "archive" / key
    path.parent.mkdir(parents=True)
    path.write_bytes(b"legacy!")
    os.setxattr(path, "user.acervo.meta",
                b"v=1\netag=" + md5(b"legacy!").encode() + b"\nsha256=\nct=text/plain\n")
    head = s3.head_object(Bucket="archive", Key=key)
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {}
    assert head["ETag"] == f'"{md5(b"legacy!")}"'
    listed = s3.list_objects_v2(Bucket="archive", Prefix=key)["Contents"]
    assert [o["Key"] for o in listed] == [key]


# --------------------------------------------------------------------------- copies


def test_copy_object_keeps_bytes_and_metadata(s3):
    src, dst, data = new_key("src"), new_key("dst"), random_bytes(300_000)
    s3.put_object(Bucket="archive", Key=src, Body=data, Metadata={"a": "1"},
                  ContentType="image/png", CacheControl="max-age=1")
    out = s3.copy_object(Bucket="proxies", Key=dst, CopySource={"Bucket": "archive", "Key": src})
    assert out["CopyObjectResult"]["ETag"] == f'"{md5(data)}"'
    got = s3.get_object(Bucket="proxies", Key=dst)
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"}
    assert got["ContentType"] == "image/png" and got["CacheControl"] == "max-age=1"


def test_copy_object_replacing_metadata(s3):
    src, dst, data = new_key("src"), new_key("dst"), random_bytes(5000)
    s3.put_object(Bucket="archive", Key=src, Body=data, Metadata={"a": "1"},
                  ContentType="image/png")
    s3.copy_object(Bucket="archive", Key=dst, CopySource=f"archive/{src}",
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/plain")
    got = s3.get_object(Bucket="archive", Key=dst)
    assert got["Body"].read() == data
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/plain"
    # the source keeps its own
    assert s3.head_object(Bucket="archive", Key=src)["Metadata"] == {"a": "1"}


def test_copy_object_refusals(s3):
    src, data = new_key("src"), b"source"
    s3.put_object(Bucket="archive", Key=src, Body=data)
    taken = new_key("taken")
    s3.put_object(Bucket="archive", Key=taken, Body=b"taken")
    cases = [
        (dict(Key=taken, CopySource=f"archive/{src}"), "PreconditionFailed"),
        (dict(Key=src, CopySource=f"archive/{src}"), "PreconditionFailed"),
        (dict(Key=new_key(), CopySource=f"archive/{new_key('none')}"), "NoSuchKey"),
        (dict(Key=new_key(), CopySource=f"nobucket/{src}"), "NoSuchBucket"),
        (dict(Key=new_key(), CopySource=f"archive/{src}", CopySourceIfMatch='"' + "0" * 32 + '"'),
         "PreconditionFailed"),
        (dict(Key=new_key(), CopySource=f"archive/{src}", CopySourceIfNoneMatch=f'"{md5(data)}"'),
         "PreconditionFailed"),
        (dict(Key=new_key(), CopySource=f"archive/{src}", MetadataDirective="MERGE"),
         "InvalidArgument"),
        (dict(Key=f"masters/{secrets.token_hex(4)}/x", CopySource=f"archive/{src}"),
         "AccessDenied"),
        (dict(Key=f"{src}/below", CopySource=f"archive/{src}"), "KeyConflict"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket="archive", **kwargs)
        assert error_code(e) == code, kwargs
    assert s3.get_object(Bucket="archive", Key=taken)["Body"].read() == b"taken"
    # conditions that hold let the copy through
    dst = new_key("cond")
    s3.copy_object(Bucket="archive", Key=dst, CopySource=f"archive/{src}",
                   CopySourceIfMatch=f'"{md5(data)}"',
                   CopySourceIfModifiedSince=datetime.datetime(2000, 1, 1))
    assert s3.get_object(Bucket="archive", Key=dst)["Body"].read() == data


def test_viewer_cannot_copy(api, viewer, s3):
    src = new_key("src")
    s3.put_object(Bucket="archive", Key=src, Body=b"x")
    with pytest.raises(ClientError) as e:
        api.s3(viewer).copy_object(Bucket="archive", Key=new_key(), CopySource=f"archive/{src}")
    assert error_code(e) == "AccessDenied"


def test_upload_part_copy(s3):
    src, dst = new_key("src"), new_key("dst")
    data = random_bytes(PART_SIZE * 2 + 12345)
    s3.put_object(Bucket="archive", Key=src, Body=data)
    up = s3.create_multipart_upload(Bucket="archive", Key=dst)["UploadId"]
    ranges = [(0, PART_SIZE - 1), (PART_SIZE, 2 * PART_SIZE - 1), (2 * PART_SIZE, len(data) - 1)]
    parts = []
    for n, (a, b) in enumerate(ranges, start=1):
        out = s3.upload_part_copy(Bucket="archive", Key=dst, UploadId=up, PartNumber=n,
                                  CopySource={"Bucket": "archive", "Key": src},
                                  CopySourceRange=f"bytes={a}-{b}")
        assert out["CopyPartResult"]["ETag"] == f'"{md5(data[a:b + 1])}"'
        parts.append({"PartNumber": n, "ETag": out["CopyPartResult"]["ETag"]})
    listed = s3.list_parts(Bucket="archive", Key=dst, UploadId=up)["Parts"]
    assert [p["Size"] for p in listed] == [PART_SIZE, PART_SIZE, 12345]
    s3.complete_multipart_upload(Bucket="archive", Key=dst, UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert sha256(s3.get_object(Bucket="archive", Key=dst)["Body"].read()) == sha256(data)


def test_upload_part_copy_refusals(s3):
    src, dst = new_key("src"), new_key("dst")
    s3.put_object(Bucket="archive", Key=src, Body=b"0123456789")
    up = s3.create_multipart_upload(Bucket="archive", Key=dst)["UploadId"]
    for rng in ("bytes=5-2", "bytes=0-10", "items=0-1", "bytes=-3", "bytes=3-"):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket="archive", Key=dst, UploadId=up, PartNumber=1,
                                CopySource=f"archive/{src}", CopySourceRange=rng)
        assert http_status(e) == 400, rng
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="archive", Key=dst, UploadId=secrets.token_hex(16),
                            PartNumber=1, CopySource=f"archive/{src}")
    assert error_code(e) == "NoSuchUpload"
    assert s3.list_parts(Bucket="archive", Key=dst, UploadId=up).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket="archive", Key=dst, UploadId=up)


# --------------------------------------------------------------------------- complete's XML


def start_upload_with_parts(s3, key, chunks):
    up = s3.create_multipart_upload(Bucket="archive", Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket="archive", Key=key, UploadId=up, PartNumber=n,
                            Body=c)["ETag"] for n, c in enumerate(chunks, start=1)]
    return up, etags


def test_complete_with_character_references_in_etags(api, editor, s3):
    """Go's encoding/xml (rclone) writes the ETag's quotes as &#34;."""
    key = new_key("go-xml")
    chunks = [random_bytes(PART_SIZE), b"tail"]
    up, etags = start_upload_with_parts(s3, key, chunks)
    inner = "".join(f"<Part><ETag>&#34;{e.strip(chr(34))}&#34;</ETag>"
                    f"<PartNumber>{n}</PartNumber></Part>" for n, e in enumerate(etags, start=1))
    body = ('<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"{inner}</CompleteMultipartUpload>").encode()
    status, _, answer = signed(api, editor, "POST", f"/archive/{key}", f"uploadId={up}",
                               body=body)
    assert status == 200, answer
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"".join(chunks)


@pytest.mark.parametrize("body", [
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&bogus;</ETag></Part>"
    b"</CompleteMultipartUpload>",
    b'<!DOCTYPE d [<!ENTITY e "x">]><CompleteMultipartUpload/>',
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>",
    b"<CompleteMultipartUpload><Part></Part></CompleteMultipartUpload>",
    b"\xff\xfe<CompleteMultipartUpload/>",
])
def test_complete_with_malformed_xml(api, editor, s3, body):
    key = new_key("bad-xml")
    up, _ = start_upload_with_parts(s3, key, [b"only"])
    status, _, answer = signed(api, editor, "POST", f"/archive/{key}", f"uploadId={up}",
                               body=body)
    assert status == 400 and xml_error(answer)[0] == "MalformedXML", answer
    # the upload is still there, untouched
    assert len(s3.list_parts(Bucket="archive", Key=key, UploadId=up)["Parts"]) == 1


# --------------------------------------------------------------------------- concurrent completes


def test_concurrent_completes_agree(api, editor):
    """Many clients completing one upload at once: each gets the object or NoSuchUpload."""
    s3 = api.s3(editor, max_pool_connections=32)
    for round_ in range(3):
        key = new_key(f"race{round_}")
        chunks = [random_bytes(PART_SIZE) for _ in range(3)] + [random_bytes(777)]
        up, etags = start_upload_with_parts(s3, key, chunks)
        parts = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
        want = md5(b"".join(bytes.fromhex(e.strip('"')) for e in etags)) + f"-{len(chunks)}"
        barrier = threading.Barrier(16)

        def complete():
            barrier.wait()
            try:
                out = s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=up,
                                                   MultipartUpload={"Parts": parts})
                return ("ok", out["ETag"].strip('"'))
            except ClientError as e:
                return (e.response["Error"]["Code"], e.response["Error"]["Message"])

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: complete(), range(16)))
        for outcome, detail in results:
            assert outcome in ("ok", "NoSuchUpload"), (outcome, detail)
            if outcome == "ok":
                assert detail == want
        assert ("ok", want) in results
        got = s3.get_object(Bucket="archive", Key=key)
        assert got["ETag"].strip('"') == want
        assert sha256(got["Body"].read()) == sha256(b"".join(chunks))


def test_retried_complete_answers_the_object(s3):
    key = new_key("retry")
    up, etags = start_upload_with_parts(s3, key, [b"one part"])
    parts = [{"PartNumber": 1, "ETag": etags[0]}]
    first = s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=up,
                                         MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket="archive", Key=key, UploadId=up,
                                         MultipartUpload={"Parts": parts})
    assert again["ETag"] == first["ETag"]
    # other parts than the completed ones: the upload is simply gone
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="archive", Key=key, UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "1" * 32 + '"'}]})
    assert error_code(e) == "NoSuchUpload"


# --------------------------------------------------------------------------- listings


@pytest.fixture(scope="module")
def tree(s3):
    """A prefix with 1,005 keys in folders: d00/k000 .. d09/..., plus loose keys."""
    base = f"tree-{secrets.token_hex(4)}/"
    keys = [f"{base}d{i % 10:02d}/k{i:04d}" for i in range(1000)]
    keys += [f"{base}loose-{i}" for i in range(5)]

    def put(k):
        s3.put_object(Bucket="archive", Key=k, Body=b"k")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    return base, sorted(keys)


def test_list_v1_paginates_with_markers(s3, tree):
    base, keys = tree
    pages = list(s3.get_paginator("list_objects").paginate(Bucket="archive", Prefix=base,
                                                            PaginationConfig={"PageSize": 300}))
    got = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert got == keys
    assert len(pages) == 4
    assert all(p["IsTruncated"] for p in pages[:-1]) and not pages[-1]["IsTruncated"]
    assert all("Owner" in o for o in pages[0]["Contents"])


def test_list_v1_raw_marker_and_next_marker(api, editor, tree):
    base, keys = tree
    q = f"prefix={quote(base, safe='')}&max-keys=10&marker={quote(keys[99], safe='')}"
    status, _, body = signed(api, editor, "GET", "/archive", q)
    root = ET.fromstring(body)
    assert [c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")] == keys[100:110]
    assert root.findtext(f"{NS}Marker") == keys[99]
    assert root.findtext(f"{NS}IsTruncated") == "true"
    assert root.find(f"{NS}NextMarker") is None  # only with a delimiter, as S3
    status, _, body = signed(api, editor, "GET", "/archive",
                             f"prefix={quote(base, safe='')}&delimiter=%2F&max-keys=3")
    root = ET.fromstring(body)
    assert [p.findtext(f"{NS}Prefix") for p in root.findall(f"{NS}CommonPrefixes")] == \
        [f"{base}d00/", f"{base}d01/", f"{base}d02/"]
    assert root.findtext(f"{NS}NextMarker") == f"{base}d02/"
    assert root.findtext(f"{NS}Delimiter") == "/"


def test_list_v2_paginates(s3, tree):
    base, keys = tree
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket="archive", Prefix=base, PaginationConfig={"PageSize": 250}))
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    assert pages[1]["ContinuationToken"] == pages[0]["NextContinuationToken"]
    assert "Owner" not in pages[0]["Contents"][0]
    owned = s3.list_objects_v2(Bucket="archive", Prefix=base, MaxKeys=1, FetchOwner=True)
    assert owned["Contents"][0]["Owner"]["ID"]


def test_list_with_delimiter(s3, tree):
    base, keys = tree
    for call in (s3.list_objects, s3.list_objects_v2):
        out = call(Bucket="archive", Prefix=base, Delimiter="/")
        assert [p["Prefix"] for p in out["CommonPrefixes"]] == [f"{base}d{i:02d}/"
                                                               for i in range(10)]
        assert [o["Key"] for o in out["Contents"]] == [f"{base}loose-{i}" for i in range(5)]
        out = call(Bucket="archive", Prefix=f"{base}d03/", Delimiter="/")
        assert len(out["Contents"]) == 100 and "CommonPrefixes" not in out


def test_common_prefixes_count_and_never_repeat(s3, tree):
    base, _ = tree
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        out = s3.list_objects_v2(Bucket="archive", Prefix=base, Delimiter="/", MaxKeys=4, **kw)
        entries = [p["Prefix"] for p in out.get("CommonPrefixes", [])] + \
                  [o["Key"] for o in out.get("Contents", [])]
        assert out["KeyCount"] == len(entries) <= 4
        seen += entries
        pages += 1
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
    assert len(seen) == len(set(seen)) == 15
    assert pages == 4
    # V1 with markers, the same
    seen, marker = [], ""
    while True:
        out = s3.list_objects(Bucket="archive", Prefix=base, Delimiter="/", MaxKeys=4,
                              Marker=marker)
        seen += [p["Prefix"] for p in out.get("CommonPrefixes", [])] + \
                [o["Key"] for o in out.get("Contents", [])]
        if not out["IsTruncated"]:
            break
        marker = out["NextMarker"]
    assert len(seen) == len(set(seen)) == 15


def test_list_echoes_and_edges(api, editor, s3, tree):
    base, keys = tree
    out = s3.list_objects_v2(Bucket="archive", Prefix=base, StartAfter=keys[10], MaxKeys=2)
    assert out["StartAfter"] == keys[10]
    assert [o["Key"] for o in out["Contents"]] == keys[11:13]
    out = s3.list_objects_v2(Bucket="archive", Prefix=base, MaxKeys=0)
    assert out["IsTruncated"] is False and "Contents" not in out and out["KeyCount"] == 0
    out = s3.list_objects(Bucket="archive", Prefix=base, MaxKeys=0)
    assert out["IsTruncated"] is False and "Contents" not in out
    out = s3.list_objects_v2(Bucket="archive", Prefix=base, MaxKeys=5000)
    assert out["MaxKeys"] == 1000 and len(out["Contents"]) == 1000 and out["IsTruncated"]
    # an empty delimiter= is no delimiter
    status, _, body = signed(api, editor, "GET", "/archive",
                             f"list-type=2&prefix={quote(base, safe='')}&delimiter=&max-keys=3")
    root = ET.fromstring(body)
    assert len(root.findall(f"{NS}Contents")) == 3 and root.find(f"{NS}CommonPrefixes") is None
    for bad in ("max-keys=-1", "max-keys=ten", "encoding-type=base64", "list-type=3",
                "list-type=2&continuation-token=zz"):
        status, _, body = signed(api, editor, "GET", "/archive", bad)
        assert status == 400, bad
        assert xml_error(body)[0] == "InvalidArgument"


def test_list_without_url_encoding_escapes_keys(api, editor, s3):
    base = f"esc-{secrets.token_hex(3)}/"
    odd = [f"{base}a&b<c>\"d'", f"{base}plus+and space", f"{base}ñandú 🎬"]
    for k in odd:
        s3.put_object(Bucket="archive", Key=k, Body=b"x")
    status, _, body = signed(api, editor, "GET", "/archive",
                             f"list-type=2&prefix={quote(base, safe='')}")
    root = ET.fromstring(body)  # well-formed, and exact
    assert sorted(c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")) == sorted(odd)
    status, _, body = signed(api, editor, "GET", "/archive",
                             f"prefix={quote(base, safe='')}&encoding-type=url")
    root = ET.fromstring(body)
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert f"{quote(base)}plus%2Band%20space" in [c.findtext(f"{NS}Key")
                                                 for c in root.findall(f"{NS}Contents")]
    # a prefix XML cannot carry needs encoding-type=url
    status, _, body = signed(api, editor, "GET", "/archive", "prefix=%01")
    assert status == 400 and "encoding-type=url" in xml_error(body)[1]
    status, _, body = signed(api, editor, "GET", "/archive", "prefix=%01&encoding-type=url")
    assert status == 200 and ET.fromstring(body).findtext(f"{NS}Prefix") == "%01"


def test_list_multipart_uploads_paginates(s3):
    base = f"ups-{secrets.token_hex(3)}/"
    made = []
    for k in ("a/1", "a/2", "b", "c", "c", "d"):
        made.append((base + k, s3.create_multipart_upload(Bucket="archive",
                                                          Key=base + k)["UploadId"]))
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(
        Bucket="archive", Prefix=base, PaginationConfig={"PageSize": 2}))
    got = [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])]
    assert sorted(got) == sorted(made) and len(got) == 6
    assert len(pages) == 3
    assert pages[0]["IsTruncated"] and pages[0]["NextKeyMarker"] == got[1][0]
    out = s3.list_multipart_uploads(Bucket="archive", Prefix=base, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == [base + "a/"]
    assert sorted(u["Key"] for u in out["Uploads"]) == [base + k for k in ("b", "c", "c", "d")]
    out = s3.list_multipart_uploads(Bucket="archive", Prefix=base, MaxUploads=0)
    assert out["IsTruncated"] is False and "Uploads" not in out
    for key, up in made:
        s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=up)


def test_list_parts_paginates(s3):
    key = new_key("parts")
    up, _ = start_upload_with_parts(s3, key, [bytes([n]) * 10 for n in range(1, 8)])
    pages = list(s3.get_paginator("list_parts").paginate(
        Bucket="archive", Key=key, UploadId=up, PaginationConfig={"PageSize": 3}))
    assert [p["PartNumber"] for page in pages for p in page["Parts"]] == list(range(1, 8))
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    out = s3.list_parts(Bucket="archive", Key=key, UploadId=up, MaxParts=5000)
    assert out["MaxParts"] == 1000 and len(out["Parts"]) == 7
    s3.abort_multipart_upload(Bucket="archive", Key=key, UploadId=up)


# --------------------------------------------------------------------------- clear errors


def test_sigv2_presigned_url_says_so(api, editor):
    url = (f"{api.s3_url}/archive/ops/x?AWSAccessKeyId={editor.s3_access_key}"
           f"&Expires=2000000000&Signature=abc%3D")
    r = requests.get(url, timeout=30)
    assert r.status_code == 400
    code, message = xml_error(r.content)
    assert code == "InvalidRequest" and "Signature Version 2" in message


def test_sigv2_authorization_header_says_so(api, editor):
    r = requests.get(f"{api.s3_url}/archive/ops/x", timeout=30, headers={
        "Authorization": f"AWS {editor.s3_access_key}:c2lnbmF0dXJl",
        "Date": "Mon, 07 Dec 2026 10:00:00 GMT"})
    assert r.status_code == 400
    assert "Signature Version 2" in xml_error(r.content)[1]


def test_key_clashing_with_a_folder_says_what_clashes(s3):
    base = f"clash-{secrets.token_hex(3)}"
    s3.put_object(Bucket="archive", Key=f"{base}/a/b", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=f"{base}/a", Body=b"y")
    assert error_code(e) == "KeyConflict" and http_status(e) == 409
    assert f"other keys begin with {base}/a/" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="archive", Key=f"{base}/a/b/c", Body=b"y")
    assert error_code(e) == "KeyConflict"
    assert f"{base}/a/b is an object" in e.value.response["Error"]["Message"]
    # the multipart path says the same
    up, etags = start_upload_with_parts(s3, f"{base}/a", [b"z"])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="archive", Key=f"{base}/a", UploadId=up,
                                     MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                 "ETag": etags[0]}]})
    assert error_code(e) == "KeyConflict"


@pytest.mark.parametrize("raw", ["%FF%FE", "%C0%AF", "a%ED%A0%80b", "%E2%82", "x%EF%BF%BF"])
def test_keys_that_are_not_utf8_are_refused(api, editor, s3, raw):
    status, _, body = signed(api, editor, "PUT", f"/archive/probe/{raw}", body=b"x")
    assert status == 400, body
    code, _ = xml_error(body)  # the error itself is well-formed XML
    assert code in ("InvalidURI", "InvalidArgument")
    status, _, body = signed(api, editor, "POST", f"/archive/probe/{raw}", "uploads")
    assert status == 400
    # and the whole bucket still lists as XML boto3 parses
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="archive", Prefix="probe/")
    assert all("probe/\ufffd" not in o["Key"] for p in pages for o in p.get("Contents", []))
    status, _, body = signed(api, editor, "GET", "/archive", "prefix=probe%2F")
    ET.fromstring(body)
