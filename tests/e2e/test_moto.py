"""stsgate end to end against moto (STS + S3 + IAM, IAM authentication on) with boto3.

`run.sh` drives this file twice:

1. `python test_moto.py setup MOTO_URL OUT_ENV OUT_JSON` bootstraps moto: exactly three
   unauthenticated actions (an admin user, its key, its policy; moto_server runs with
   INITIAL_NO_AUTH_ACTION_COUNT=3), then everything else as that admin with SigV4 checked:
   the upload role and its policy, stsgate's own IAM user (allowed only sts:AssumeRole on
   that role), and the bucket. It writes stsgate's keys as shell assignments to OUT_ENV and
   the rest to OUT_JSON.
2. pytest runs the tests below against the running stsgate (E2E_* environment variables).
"""

import json
import os
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "stsgate-e2e"
ROLE = "stsgate-uploader"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
PATH_STYLE = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def client(service, url, key_id, secret, token=None):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=PATH_STYLE,
    )


def setup(moto_url, out_env, out_json):
    # The three unauthenticated actions moto allows (INITIAL_NO_AUTH_ACTION_COUNT=3).
    iam0 = client("iam", moto_url, "bootstrap", "bootstrap")
    iam0.create_user(UserName="e2e-admin")
    admin_key = iam0.create_access_key(UserName="e2e-admin")["AccessKey"]
    iam0.put_user_policy(
        UserName="e2e-admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    admin = (admin_key["AccessKeyId"], admin_key["SecretAccessKey"])
    # From here on moto checks every request's signature and permissions.
    iam = client("iam", moto_url, *admin)
    iam.create_user(UserName="stsgate")
    iam.create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/stsgate"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    # The role may upload to the bucket; stsgate's session policy narrows it to one key.
    iam.put_role_policy(
        RoleName=ROLE,
        PolicyName="upload",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                        "Resource": f"arn:aws:s3:::{BUCKET}/*",
                    }
                ],
            }
        ),
    )
    iam.put_user_policy(
        UserName="stsgate",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN},
                    # stsgate's HEAD of an announced upload, and the delete of a rejected one
                    # (providers.aws.verify_uploads, docs/providers/aws.md).
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:DeleteObject"],
                        "Resource": f"arn:aws:s3:::{BUCKET}/*",
                    },
                ],
            }
        ),
    )
    sg_key = iam.create_access_key(UserName="stsgate")["AccessKey"]
    client("s3", moto_url, *admin).create_bucket(Bucket=BUCKET)
    with open(out_env, "w") as f:
        for k, v in {
            "STSGATE_PROVIDERS__AWS__ACCESS_KEY_ID": sg_key["AccessKeyId"],
            "STSGATE_PROVIDERS__AWS__SECRET_ACCESS_KEY": sg_key["SecretAccessKey"],
            "STSGATE_PROVIDERS__AWS__ROLE_ARN": ROLE_ARN,
            "STSGATE_PROVIDERS__AWS__BUCKET": BUCKET,
            "STSGATE_PROVIDERS__AWS__REGION": REGION,
            "STSGATE_PROVIDERS__AWS__STS_REGION": REGION,
            "STSGATE_PROVIDERS__AWS__STS_ENDPOINT": moto_url,
            "STSGATE_PROVIDERS__AWS__S3_ENDPOINT": moto_url,
            "STSGATE_PROVIDERS__AWS__PATH_STYLE": "true",
        }.items():
            f.write(f"{k}={shlex.quote(v)}\n")
    with open(out_json, "w") as f:
        json.dump({"admin_key_id": admin[0], "admin_secret": admin[1]}, f)


# ---- the tests (pytest) ----


@pytest.fixture(scope="module")
def env():
    with open(os.environ["E2E_SETUP_JSON"]) as f:
        admin = json.load(f)
    return {
        "moto": os.environ["E2E_MOTO_URL"],
        "stsgate": os.environ["E2E_STSGATE_URL"],
        "token": os.environ["E2E_TOKEN"],
        "admin": (admin["admin_key_id"], admin["admin_secret"]),
    }


def http(env, method, path, body=None, content_type=None):
    req = urllib.request.Request(env["stsgate"] + path, method=method, data=body)
    req.add_header("Authorization", "Bearer " + env["token"])
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def issue(env, query):
    status, answer = http(env, "GET", "/upload/sts/info?" + query)
    assert status == 200 and answer["code"] == 0, answer
    return answer["data"]


def error_code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def test_moto_checks_signatures(env):
    """IAM authentication is on: unknown or mis-signed credentials are refused."""
    admin_key, admin_secret = env["admin"]
    sts = client("sts", env["moto"], admin_key, admin_secret)
    assert sts.get_caller_identity()["Arn"].endswith(":user/e2e-admin")
    assert error_code(client("sts", env["moto"], "AKIAUNKNOWN0000000000", "x").get_caller_identity) == (
        "InvalidClientTokenId"
    )
    bad = client("s3", env["moto"], admin_key, admin_secret[:-1] + ("A" if admin_secret[-1] != "A" else "B"))
    assert error_code(bad.list_buckets) == "SignatureDoesNotMatch"


def test_boto3_uploads_with_stsgate_credentials(env):
    d = issue(env, "type=2&extension=png&isNeedCallback=1&uploadModule=resource_image")
    key = d["relativePath"]
    assert d["bucket"] == BUCKET and d["region"] == REGION and d["endpoint"] == env["moto"]
    assert d["accessKeyId"].startswith("ASIA")
    assert d["form"]["url"] == f"{env['moto']}/{BUCKET}"
    assert d["form"]["fields"]["key"] == key

    # A real client uploads to relativePath with the temporary credentials.
    s3 = client("s3", d["endpoint"], d["accessKeyId"], d["secretAccessKey"], d["securityToken"])
    payload = b"\x89PNG\r\n\x1a\n" + b"stsgate end-to-end upload through moto " * 100
    put = s3.put_object(Bucket=d["bucket"], Key=key, Body=payload, ContentType="image/png")

    # HEAD (as the admin: the session may only write) shows it; so does the listing.
    admin_s3 = client("s3", env["moto"], *env["admin"])
    head = admin_s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(payload)
    assert head["ETag"] == put["ETag"]
    listed = admin_s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(key, len(payload))]
    print(f"\nmoto HEAD: key={key} ContentLength={head['ContentLength']} ETag={head['ETag']}")
    print(f"moto ListObjectsV2: Key={listed[0]['Key']} Size={listed[0]['Size']}")

    # The client's callback marks the object uploaded.
    cb = d["callbackInfo"]
    body = cb["callbackBody"] + "&" + urllib.parse.urlencode(
        {"bucket": BUCKET, "object": key, "size": len(payload), "mimeType": "image/png", "etag": head["ETag"]}
    )
    status, answer = http(env, "POST", "/upload/callback", body.encode(), cb["callbackBodyType"])
    assert status == 200, answer
    status, obj = http(env, "GET", f"/upload/objects/{d['objectId']}")
    assert status == 200, obj
    assert obj["data"]["status"] == "uploaded"
    assert obj["data"]["size"] == len(payload)
    # stsgate asked moto (a HEAD signed with its long-term key), not the client.
    assert obj["data"]["verifiedBy"] == "head", obj
    print(f"stsgate GET /upload/objects/{d['objectId']}: {json.dumps(obj['data'], sort_keys=True)}")


def test_tampered_credentials_are_refused_by_moto(env):
    d = issue(env, "type=2&extension=png&isNeedCallback=0&uploadModule=resource_image")
    key = d["relativePath"]

    def flip(s, i):
        return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1 :]

    cases = {
        "secret": (d["accessKeyId"], flip(d["secretAccessKey"], 5), d["securityToken"]),
        "token": (d["accessKeyId"], d["secretAccessKey"], flip(d["securityToken"], 10)),
        "key id": (flip(d["accessKeyId"], 8), d["secretAccessKey"], d["securityToken"]),
        "no token": (d["accessKeyId"], d["secretAccessKey"], None),
    }
    codes = {}
    for name, creds in cases.items():
        s3 = client("s3", d["endpoint"], *creds)
        codes[name] = error_code(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered"))
    print(f"\nmoto refused tampered credentials: {codes}")
    assert codes["secret"] == "SignatureDoesNotMatch"
    assert codes["token"] == "InvalidToken"
    assert codes["key id"] == "InvalidAccessKeyId"
    assert codes["no token"] == "InvalidAccessKeyId"
    admin_s3 = client("s3", env["moto"], *env["admin"])
    assert admin_s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount", 0) == 0
    # The untampered credentials work.
    client("s3", d["endpoint"], d["accessKeyId"], d["secretAccessKey"], d["securityToken"]).put_object(
        Bucket=BUCKET, Key=key, Body=b"genuine"
    )
    assert admin_s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == 7


def test_folder_credentials_multipart_upload(env):
    """isDir=1: a multipart upload (CreateMultipartUpload, UploadPart, Complete) under the folder."""
    from boto3.s3.transfer import TransferConfig

    d = issue(env, "type=2&extension=mp4&isNeedCallback=0&uploadModule=resource_video&isDir=1")
    prefix = d["relativePath"]
    assert prefix.endswith(f"/{d['objectId']}/")
    s3 = client("s3", d["endpoint"], d["accessKeyId"], d["secretAccessKey"], d["securityToken"])
    import io

    data = os.urandom(6 * 1024 * 1024)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(data), BUCKET, prefix + "part-0001.mp4", Config=cfg)
    head = client("s3", env["moto"], *env["admin"]).head_object(Bucket=BUCKET, Key=prefix + "part-0001.mp4")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-2"'), head["ETag"]  # two parts
    print(f"\nmoto HEAD (multipart): key={prefix}part-0001.mp4 ContentLength={head['ContentLength']} ETag={head['ETag']}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: test_moto.py setup MOTO_URL OUT_ENV OUT_JSON")
