"""boto3 against stsgate's embedded object store (cloud type 2 with no cloud account).

`run.sh` starts stsgate on embedded defaults (SQLite, the store on its own port) in a
scratch folder and runs this file with E2E_STSGATE_URL, E2E_TOKEN and E2E_STORE_DIR set.
Every upload uses only what `GET /upload/sts/info` answered: the minted access key id,
secret and session token, the endpoint and the bucket.
"""

import hashlib
import io
import json
import os
import urllib.request

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

STSGATE = os.environ.get("E2E_STSGATE_URL", "")
TOKEN = os.environ.get("E2E_TOKEN", "")
STORE_DIR = os.environ.get("E2E_STORE_DIR", "")


def api(path):
    req = urllib.request.Request(STSGATE + path, headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["data"]


def issue(query):
    return api("/upload/sts/info?" + query)


def s3_for(data):
    return boto3.client(
        "s3",
        endpoint_url=data["endpoint"],
        region_name=data["region"],
        aws_access_key_id=data["accessKeyId"],
        aws_secret_access_key=data["secretAccessKey"],
        aws_session_token=data["securityToken"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def on_disk(key):
    with open(os.path.join(STORE_DIR, "local", key), "rb") as f:
        return f.read()


def code(err):
    return err.value.response["Error"]["Code"]


def test_put_object_lands_and_the_ledger_records_it():
    data = issue("type=2&extension=png&isNeedCallback=0&uploadModule=resource_image&platform=web")
    body = os.urandom(300_000)
    out = s3_for(data).put_object(
        Bucket=data["bucket"], Key=data["relativePath"], Body=body, ContentType="image/png"
    )
    assert out["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    assert on_disk(data["relativePath"]) == body
    rec = api("/upload/objects/%d" % data["objectId"])
    print("PutObject ->", rec)
    assert rec["status"] == "uploaded" and rec["size"] == len(body)
    assert rec["verifiedBy"] == "store" and rec["mimeType"] == "image/png"


def test_multipart_upload_lands_with_s3s_etag():
    data = issue("type=2&extension=mp4&isNeedCallback=0&uploadModule=resource_video")
    body = os.urandom(11 * 1024 * 1024)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3_for(data).upload_fileobj(io.BytesIO(body), data["bucket"], data["relativePath"], Config=cfg)
    assert on_disk(data["relativePath"]) == body
    rec = api("/upload/objects/%d" % data["objectId"])
    print("multipart ->", rec)
    assert rec["status"] == "uploaded" and rec["size"] == len(body)
    assert rec["etag"].endswith('-3"'), rec["etag"]


def test_other_keys_reads_and_escapes_are_refused():
    data = issue("type=2&extension=png&isNeedCallback=0&uploadModule=resource_image")
    s3 = s3_for(data)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=data["bucket"], Key="test/resource/image/someone-else.png", Body=b"x")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=data["bucket"], Key=data["relativePath"])
    assert code(e) == "AccessDenied"
    folder = issue("type=2&extension=png&isNeedCallback=0&uploadModule=directorytemp&isDir=1")
    with pytest.raises(ClientError) as e:
        s3_for(folder).put_object(
            Bucket=folder["bucket"], Key=folder["relativePath"] + "../../escape.png", Body=b"x"
        )
    assert code(e) == "InvalidArgument"
    assert not os.path.exists(os.path.join(STORE_DIR, "local", "test", "temp", "escape.png"))
    rec = api("/upload/objects/%d" % data["objectId"])
    assert rec["status"] == "issued"
