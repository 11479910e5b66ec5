#!/usr/bin/python3
"""Checks the media bucket through the real S3 API (boto3) and anonymous HTTP, prints one JSON object
{check: {"ok": bool, "detail": str}}. Settings come from the environment (the role's exported
S3_* variables plus PUBLIC_URL), so no secret appears on a command line.
Exit code 0 even when checks fail: verify.yml asserts on each check by name."""
import hashlib
import io
import json
import os
import urllib.error
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

env = os.environ
endpoint, bucket, public = env["S3_ENDPOINT"], env["S3_BUCKET"], env["PUBLIC_URL"]
# Mastodon's meaning: with an endpoint, path style unless S3_OVERRIDE_PATH_STYLE is "true".
style = "virtual" if env["S3_OVERRIDE_PATH_STYLE"] == "true" else "path"
MB = 1024 * 1024


def client(key_id, secret):
    return boto3.client("s3", endpoint_url=endpoint, region_name=env["S3_REGION"],
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(signature_version="s3v4", s3={"addressing_style": style},
                                      retries={"max_attempts": 1}))


s3 = client(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
results = {}


def check(name):
    def wrap(fn):
        try:
            ok, detail = fn()
        except Exception as e:  # any error is a failed check, reported by name
            ok, detail = False, f"{type(e).__name__}: {e}"[:400]
        results[name] = {"ok": bool(ok), "detail": str(detail)}
        return fn
    return wrap


def http(url, method="GET", data=None):
    """Anonymous request: (status, body)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@check("bucket_exists")
def _():
    r = s3.head_bucket(Bucket=bucket)
    return r["ResponseMetadata"]["HTTPStatusCode"] == 200, "HEAD bucket 200"


@check("anonymous_get")
def _():
    body = b"public object " + os.urandom(8).hex().encode()
    s3.put_object(Bucket=bucket, Key="verify/public.txt", Body=body, ContentType="text/plain")
    status, got = http(f"{public}/verify/public.txt")
    return status == 200 and got == body, f"GET {public}/verify/public.txt -> {status}"


@check("put_with_acl_public_read")
def _():
    # What Mastodon sends when S3_PERMISSION=public-read.
    s3.put_object(Bucket=bucket, Key="verify/acl.txt", Body=b"acl", ACL="public-read")
    status, got = http(f"{public}/verify/acl.txt")
    return status == 200 and got == b"acl", f"PutObject with x-amz-acl public-read accepted; anonymous GET {status}"


@check("put_object_acl_not_implemented")
def _():
    try:
        s3.put_object_acl(Bucket=bucket, Key="verify/acl.txt", ACL="private")
    except ClientError as e:
        code = e.response["Error"]["Code"]
        status, _ = http(f"{public}/verify/acl.txt")
        return code == "NotImplemented" and status == 200, f"PutObjectAcl -> {code}; object still public ({status})"
    return False, "PutObjectAcl succeeded"


@check("anonymous_list_denied")
def _():
    urls = [f"{endpoint}/{bucket}", f"{endpoint}/{bucket}/", f"{endpoint}/{bucket}?list-type=2",
            public, f"{public}/", f"{public}?format=json"]
    answers = {u: http(u) for u in urls}
    leaked = {u: s for u, (s, b) in answers.items() if s < 300 or b"verify/public.txt" in b}
    return not leaked, {u: s for u, (s, _) in answers.items()}


@check("anonymous_put_denied")
def _():
    answers = {u: http(u, "PUT", b"anonymous")[0]
               for u in (f"{endpoint}/{bucket}/verify/anon.txt", f"{public}/verify/anon.txt")}
    try:
        s3.head_object(Bucket=bucket, Key="verify/anon.txt")
        stored = True
    except ClientError:
        stored = False
    return not stored and all(s in (400, 401, 403) for s in answers.values()), f"{answers}, stored={stored}"


def round_trip(key, size, config):
    data = os.urandom(size)
    s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
    status, got = http(f"{public}/{key}")
    want, have = hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest()
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    return status == 200 and want == have, f"{key}: {size} bytes, ETag {etag}, anonymous GET {status}, sha256 match={want == have}"


@check("multipart_20mb")
def _():
    # 4 parts of 5 MB, like Mastodon above S3_MULTIPART_THRESHOLD.
    return round_trip("verify/multipart.bin", 20 * MB,
                      TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB))


@check("single_1mb")
def _():
    return round_trip("verify/single.bin", 1 * MB, TransferConfig(multipart_threshold=64 * MB))


@check("wrong_keys_refused")
def _():
    codes = []
    for key_id, secret in ((env["AWS_ACCESS_KEY_ID"], "wrong-secret-0123456789"), ("nobody:nobody", "wrong-secret-0123456789")):
        try:
            client(key_id, secret).put_object(Bucket=bucket, Key="verify/wrong.txt", Body=b"x")
            codes.append("accepted")
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
    return all(c in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied") for c in codes), codes


print(json.dumps(results))
