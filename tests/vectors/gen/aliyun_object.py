#!/usr/bin/env python3
"""Writes tests/vectors/aliyun/aliyun_object.json from the official OSS Python SDK.

    python3 -m venv /tmp/venv-aliyun
    /tmp/venv-aliyun/bin/pip install oss2==2.19.1
    /tmp/venv-aliyun/bin/python tests/vectors/gen/aliyun_object.py

Two kinds of case, both OSS signature V1 (HMAC-SHA1):

- "presigned_put": `oss2.Bucket(oss2.StsAuth(tmp_id, tmp_secret, token), endpoint, bucket)
  .sign_url('PUT', key, expires, headers={'Content-Type': ...})` (or no headers), the
  `uploadUrl` stsgate hands out: query `security-token`, `OSSAccessKeyId`, `Expires`,
  `Signature`; the token is a signed sub-resource and the Content-Type a signed header.
- "head" / "delete": `oss2.Bucket(oss2.Auth(ak, sk), ...).head_object(key)` /
  `.delete_object(key)` with the long-term key, captured before sending (a session that
  records the request): `Date` and `Authorization: OSS {ak}:{signature}`.

Fixed fake keys, a fixed clock (time.time is replaced), no network: deterministic. The
string to sign is the SDK's own (its V1 `__get_bytes_to_sign`, called on the signed request).
"""

import json
import os
import time

FIXED_NOW = 1704168245  # 2024-01-02T04:04:05Z
time.time = lambda: float(FIXED_NOW)

import oss2  # noqa: E402  (after the clock is fixed)
from oss2 import http as oss_http  # noqa: E402

TMP_ID = "STS.NUfakeTmpKeyId00000001"
TMP_SECRET = "FAKEtmpSecret00000001abcdefABCDEF"
TOKEN = "CAISfakeToken00000001+/=abc"
AK = "LTAI5tFAKEstsgateKeyId00"
SK = "FAKEstsgateAccessKeySecret000000"
ENDPOINT = "https://oss-cn-beijing.aliyuncs.com"
BUCKET = "bseditor"

PUT_CASES = [
    ("put-png", "test/resource/image/2024/01/02/7/0b9a6a3e-8c1f-4d2b-9e57-6a1f2d3c4b5a.png",
     "image/png", 3600),
    ("put-unicode", "test/resource/image/2024/01/02/8/中文 图片.png", "image/png", 900),
    ("put-space-plus", "test/resource/video/2024/01/02/9/a b+c=d&e.mp4", "video/mp4", 43200),
    ("put-no-content-type", "test/temp/2024/01/02/10/x.bin", None, 1800),
]

OBJECT_CASES = [
    ("head-plain", "HEAD", "test/resource/image/2024/01/02/7/n.png"),
    ("head-unicode", "HEAD", "test/resource/image/2024/01/02/8/中文 图片.png"),
    ("delete-space-plus", "DELETE", "test/resource/video/2024/01/02/9/a b+c=d&e.mp4"),
    ("delete-plain", "DELETE", "test/resource/image/2024/01/02/7/n.png"),
]


class Captured(Exception):
    pass


class RecordingSession(oss_http.Session):
    """A session that records the signed request instead of sending it."""

    def __init__(self):
        super().__init__()
        self.req = None

    def do_request(self, req, timeout):
        self.req = req
        raise Captured()


def v1_bytes_to_sign(provider_auth, req, key):
    # The SDK's own V1 string to sign (name-mangled private method of ProviderAuth).
    return provider_auth._ProviderAuth__get_bytes_to_sign(req, BUCKET, key).decode("utf-8")


def put_case(cid, key, content_type, expires):
    auth = oss2.StsAuth(TMP_ID, TMP_SECRET, TOKEN)
    bucket = oss2.Bucket(auth, ENDPOINT, BUCKET)
    headers = {"Content-Type": content_type} if content_type else None
    url = bucket.sign_url("PUT", key, expires, headers=headers)
    # Rebuild the request sign_url signed, to read the SDK's string to sign.
    req = oss_http.Request("PUT", bucket._make_url(BUCKET, key), headers=headers)
    again = auth._sign_url(req, BUCKET, key, expires)
    assert again == url
    provider = auth._StsAuth__auth
    to_sign = v1_bytes_to_sign(provider, req, key)
    return {
        "id": cid,
        "kind": "presigned_put",
        "oracle": "oss2 StsAuth (V1) + Bucket.sign_url('PUT', key, expires, headers)",
        "input": {
            "access_key_id": TMP_ID,
            "access_key_secret": TMP_SECRET,
            "security_token": TOKEN,
            "endpoint": ENDPOINT,
            "bucket": BUCKET,
            "key": key,
            "content_type": content_type,
            "now": FIXED_NOW,
            "expires_in": expires,
        },
        "expected": {
            "expires": str(FIXED_NOW + expires),
            "string_to_sign": to_sign,
            "signature": req.params["Signature"],
            "url": url,
            "headers": {"Content-Type": content_type} if content_type else {},
        },
    }


def object_case(cid, method, key):
    auth = oss2.Auth(AK, SK)
    bucket = oss2.Bucket(auth, ENDPOINT, BUCKET)
    session = RecordingSession()
    bucket.session = session
    try:
        if method == "HEAD":
            bucket.head_object(key)
        else:
            bucket.delete_object(key)
    except Captured:
        pass
    req = session.req
    assert req is not None and req.method == method
    to_sign = v1_bytes_to_sign(auth, req, key)
    sent = {k: v for k, v in req.headers.items() if k.lower() in ("date", "authorization")}
    auth_value = sent["authorization"]
    return {
        "id": cid,
        "kind": method.lower(),
        "oracle": "oss2 Auth (V1) + Bucket.%s (request captured before sending)"
                  % ("head_object" if method == "HEAD" else "delete_object"),
        "input": {
            "access_key_id": AK,
            "access_key_secret": SK,
            "endpoint": ENDPOINT,
            "bucket": BUCKET,
            "key": key,
            "method": method,
            "now": FIXED_NOW,
        },
        "expected": {
            "url": req.url,
            "date": sent["date"],
            "string_to_sign": to_sign,
            "signature": auth_value.split(":", 1)[1],
            "authorization": auth_value,
            "headers": {"Date": sent["date"], "Authorization": auth_value},
            "other_signed_headers": sorted(
                k.lower() for k in req.headers.keys()
                if k.lower().startswith("x-oss-") or k.lower() in ("content-type", "content-md5")
            ),
        },
    }


def main():
    vectors = [put_case(*c) for c in PUT_CASES] + [object_case(*c) for c in OBJECT_CASES]
    out = {
        "algorithm": "OSS signature V1 (HMAC-SHA1): presigned PUT with STS token; HEAD/DELETE header signing",
        "generator": "tests/vectors/gen/aliyun_object.py",
        "sdk_versions": {"oss2": oss2.__version__},
        "notes": "sign_url with default slash_safe=False: the key is quoted with safe='' "
                 "('/' becomes %2F) in the URL, raw in the canonical resource; the query "
                 "values are quoted with safe=''. Clock fixed at now.",
        "count": len(vectors),
        "vectors": vectors,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "aliyun", "aliyun_object.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"wrote {len(vectors)} vectors to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
