#!/usr/bin/env python3
"""KS3 object-request vectors (tests/vectors/ksyun/ksyun_object.json) from the official SDK.

    python3 -m venv /tmp/venv-ksyun
    /tmp/venv-ksyun/bin/pip install ks3sdk==1.18.0
    /tmp/venv-ksyun/bin/python tests/vectors/gen/ksyun_object.py

Deterministic: fixed fake keys, `time.time` monkeypatched to a fixed clock, nothing sent
(`ks3.http.do_request` is replaced by a capture that answers a fake 200).

What the SDK does, and how this script uses it (read from ks3sdk 1.18.0's source):

* Presigned URL: `Connection.generate_url(expires_in, method, bucket, key, headers)` signs the
  KS3 "V2" string `METHOD \\n Content-MD5 \\n Content-Type \\n Expires \\n
  [x-kss-* headers, lower-case, sorted, "name:value" joined by \\n \\n] /bucket/key` with
  `base64(HMAC-SHA1(SK, ...))` and appends `?Signature=<quoted>&Expires=<unix>&KSSAccessKeyId=<ak>`.
* The temporary credential's token: `Connection(..., security_token=...)` only stores it in its
  `Provider` (whose `security_token_header` is `x-kss-security-token`); neither `make_request`
  nor `generate_url` sends or signs it, so the Python SDK cannot presign with a token by
  itself. The token is therefore passed, as the SDK's own header name, in `headers`
  (`{"x-kss-security-token": token}`), which `generate_url` signs as a canonicalized
  `x-kss-` header. It is NOT added to the URL (the SDK's code that would copy signed headers
  into the query is dead: it appends to a list it never uses), so the client must send it as a
  request header, with the Content-Type that was signed.
* HEAD / DELETE with the long-term key: `Connection.make_request(method, bucket, key)` adds
  `Date` (email.utils.formatdate(time.time(), usegmt=True)) and
  `Authorization: KSS {ak}:{signature}` (`ks3.auth.add_auth_header`). The string to sign is
  captured by wrapping `ks3.auth.canonical_string`; the request by replacing `do_request`.

The SDK writes the default https port into the host (`bucket.host:443`); the vectors keep
the SDK's URL as it is.
"""
import json
import os
import sys
import time

import ks3
import ks3.auth as auth
import ks3.http as http
from ks3.connection import Connection

NOW = 1767225600  # 2026-01-01T00:00:00Z
HOST = "ks3-cn-beijing.ksyuncs.com"
BUCKET = "stsgate-demo"
LONG_AK = "AKLTlongTermKS3example01"
LONG_SK = "longTermKS3secret/key+0001=abcdefgh"
TMP_AK = "AKTPtemporaryKS3example0001"
TMP_SK = "tmpKS3secret+/key=0001abcdefghijk"
TOKEN = "FAKEtoken/KS3+session=0001abcdef0123456789"

time.time = lambda: float(NOW)

captured_strings = []
_orig_canonical = auth.canonical_string


def _spy(*a, **kw):
    s = _orig_canonical(*a, **kw)
    captured_strings.append(s)
    return s


auth.canonical_string = _spy

captured_requests = []


class _FakeResp:
    status = 200
    reason = "OK"
    headers = {}

    def getheader(self, name, default=None):
        return default

    def read(self):
        return b""


def _fake_do_request(session, method, url, headers=None, data=None, proxy=None, timeout=10):
    captured_requests.append({"method": method, "url": url, "headers": dict(headers or {})})
    return _FakeResp()


http.do_request = _fake_do_request


def conn(ak, sk):
    return Connection(ak, sk, host=HOST, is_secure=True, dns_cache_time=0, retry_policy=None)


def presign(name, key, content_type, expires_in, description):
    headers = {"x-kss-security-token": TOKEN}
    if content_type is not None:
        headers["Content-Type"] = content_type
    captured_strings.clear()
    url = conn(TMP_AK, TMP_SK).generate_url(expires_in, "PUT", BUCKET, key, headers=dict(headers))
    assert len(captured_strings) == 1
    sts = captured_strings[0]
    signature = auth.encode(TMP_SK, sts)
    send = {"x-kss-security-token": TOKEN}
    if content_type is not None:
        send["Content-Type"] = content_type
    return {
        "name": name,
        "kind": "presigned_put",
        "description": description,
        "oracle": "ks3.connection.Connection.generate_url(expires_in, 'PUT', bucket, key, headers={'x-kss-security-token': token[, 'Content-Type': ct]})",
        "input": {
            "access_key_id": TMP_AK,
            "secret_access_key": TMP_SK,
            "security_token": TOKEN,
            "host": HOST,
            "bucket": BUCKET,
            "key": key,
            "content_type": content_type,
            "now_unix": NOW,
            "expires_in": expires_in,
        },
        "expected": {
            "expires": NOW + expires_in,
            "string_to_sign": sts,
            "signature": signature,
            "url": url,
            "headers": send,
        },
    }


def object_request(name, method, key, description):
    captured_strings.clear()
    captured_requests.clear()
    conn(LONG_AK, LONG_SK).make_request(method, BUCKET, key)
    assert len(captured_strings) == 1 and len(captured_requests) == 1
    req = captured_requests[0]
    sts = captured_strings[0]
    h = req["headers"]
    return {
        "name": name,
        "kind": "object_request",
        "description": description,
        "oracle": "ks3.connection.Connection.make_request(method, bucket, key) -> ks3.auth.add_auth_header",
        "input": {
            "access_key_id": LONG_AK,
            "secret_access_key": LONG_SK,
            "host": HOST,
            "bucket": BUCKET,
            "key": key,
            "method": method,
            "now_unix": NOW,
        },
        "expected": {
            "date": h["Date"],
            "string_to_sign": sts,
            "signature": auth.encode(LONG_SK, sts),
            "authorization": h["Authorization"],
            "url": req["url"],
            "method": req["method"],
        },
    }


vectors = [
    presign("put-png", "test/resource/image/2026/01/01/42/a1b2c3.png", "image/png", 900,
            "plain key, Content-Type signed, 15 minutes"),
    presign("put-unicode", "test/资源/图片 1.png", "image/png", 3600,
            "unicode key with a space (UTF-8 percent-encoded in path and resource)"),
    presign("put-space-plus", "test/a b+c~d.mp4", "video/mp4", 86400,
            "space and plus in the key, one day"),
    presign("put-no-content-type", "test/plain/object.bin", None, 600,
            "no Content-Type: the empty line stays in the string to sign"),
    object_request("head-png", "HEAD", "test/resource/image/2026/01/01/42/a1b2c3.png",
                   "HEAD with the long-term key"),
    object_request("head-unicode", "HEAD", "test/资源/图片 1.png", "HEAD of a unicode key"),
    object_request("delete-space-plus", "DELETE", "test/a b+c~d.mp4",
                   "DELETE of a key with space and plus"),
    object_request("delete-png", "DELETE", "test/resource/image/2026/01/01/42/a1b2c3.png",
                   "DELETE with the long-term key"),
]

out = {
    "algorithm": "KS3 V2 (KSS HMAC-SHA1): presigned PUT with a temporary credential (token as the signed x-kss-security-token header) and header-signed HEAD/DELETE with the long-term key",
    "generator": "gen/ksyun_object.py",
    "sdk_versions": {"ks3sdk": "1.18.0"},
    "python": sys.version.split()[0],
    "notes": [
        "ks3sdk's Connection stores security_token but never sends or signs it; the token is passed in headers as x-kss-security-token (the SDK provider's security_token_header), which generate_url signs as a canonicalized x-kss- header. The token is not in the URL.",
        "Fixed clock: time.time() = now_unix. Nothing is sent: ks3.http.do_request is a capture.",
        "The SDK's URLs carry the default https port (host:443).",
    ],
    "count": len(vectors),
    "vectors": vectors,
}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ksyun", "ksyun_object.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=2)
    f.write("\n")
print(f"wrote {len(vectors)} vectors to {os.path.normpath(path)}")
