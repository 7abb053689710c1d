#!/usr/bin/env python3
"""Generates tests/vectors/huawei/huawei_object.json from the official OBS SDK.

    python3 -m venv /tmp/venv-huawei
    /tmp/venv-huawei/bin/pip install esdk-obs-python==3.26.6
    /tmp/venv-huawei/bin/python tests/vectors/gen/huawei_object.py

Oracles (esdk-obs-python 3.26.6, OBS signature, virtual-host addressing):
  * presigned PUT with temporary credentials: ObsClient(..., security_token=...)
    .createSignedUrl('PUT', bucket, key, expires=..., headers={'Content-Type': ...});
  * HEAD / DELETE with the long-term key: ObsClient.getObjectMetadata / deleteObject, the
    request captured at ObsClient._send_request (never sent), the string to sign captured at
    obs.auth.Authentication.getSignature.

Fixed fake keys and a fixed clock (time.time and datetime.utcnow pinned to
2025-01-01T00:00:00Z), so every value is deterministic.
"""

import datetime as _real_datetime
import json
import os
import sys
import time
import types

FIXED = 1735689600  # 2025-01-01T00:00:00Z


class _FixedDatetime(_real_datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls(2025, 1, 1, 0, 0, 0)

    @classmethod
    def now(cls, tz=None):
        return cls(2025, 1, 1, 0, 0, 0, tzinfo=tz)


_shim = types.ModuleType("datetime")
_shim.__dict__.update(_real_datetime.__dict__)
_shim.datetime = _FixedDatetime
sys.modules["datetime"] = _shim
time.time = lambda: float(FIXED)

import obs  # noqa: E402
from obs import auth, client as obs_client  # noqa: E402

SERVER = "https://obs.cn-north-4.myhuaweicloud.com"
BUCKET = "stsgate-demo"
LONG_AK = "HWFAKEAKEXAMPLE00001"
LONG_SK = "hwFAKE/0000+EXAMPLE+secret/key=0001"
TMP_AK = "HSTFAKETMPAK00000001"
TMP_SK = "tmpFAKE/secret+0001=xyz"
TMP_TOKEN = "gQpjbi1ub3J0aC00FAKE+token/part=two/3=="

captured = {}
_orig_get_signature = auth.Authentication.getSignature


def _capture_signature(self, method, bucket, key, path_args, headers, expires=None):
    ret = _orig_get_signature(self, method, bucket, key, path_args, headers, expires)
    captured["string_to_sign"] = ret["CanonicalString"]
    captured["signature"] = ret["Signature"]
    return ret


auth.Authentication.getSignature = _capture_signature


class _Captured(Exception):
    pass


def _capture_send(self, server, method, path, header, entity=None, port=None, scheme=None,
                  redirect=False, chunkedMode=False):
    captured["request"] = {"server": server, "method": method, "path": path,
                           "headers": dict(header), "port": port}
    raise _Captured()


obs_client.ObsClient._send_request = _capture_send


def presigned_put(name, key, content_type, expires, note):
    cli = obs.ObsClient(access_key_id=TMP_AK, secret_access_key=TMP_SK,
                        security_token=TMP_TOKEN, server=SERVER)
    headers = {"Content-Type": content_type} if content_type else {}
    captured.clear()
    res = cli.createSignedUrl("PUT", BUCKET, key, expires=expires, headers=headers)
    return {
        "name": name,
        "kind": "presigned_put",
        "note": note,
        "oracle": "obs.ObsClient.createSignedUrl('PUT', ...) (esdk-obs-python 3.26.6)",
        "input": {
            "access_key": TMP_AK, "secret_key": TMP_SK, "security_token": TMP_TOKEN,
            "server": SERVER, "bucket": BUCKET, "key": key,
            "content_type": content_type, "now_unix": FIXED, "expires_in": expires,
        },
        "expected": {
            "expires": FIXED + expires,
            "string_to_sign": captured["string_to_sign"],
            "signature": captured["signature"],
            "url": res.signedUrl,
            "signed_headers": dict(res.actualSignedRequestHeaders),
        },
    }


def object_request(name, method, key, note):
    cli = obs.ObsClient(access_key_id=LONG_AK, secret_access_key=LONG_SK, server=SERVER,
                        max_retry_count=0, is_signature_negotiation=False)
    captured.clear()
    if method == "HEAD":
        fn, oracle = cli.getObjectMetadata, "obs.ObsClient.getObjectMetadata"
    else:
        fn, oracle = cli.deleteObject, "obs.ObsClient.deleteObject"
    try:
        fn(BUCKET, key)
    except _Captured:
        pass
    req = captured["request"]
    headers = {k: v for k, v in req["headers"].items()}
    return {
        "name": name,
        "kind": "object_request",
        "note": note,
        "oracle": oracle + " (esdk-obs-python 3.26.6), request captured before sending",
        "input": {
            "access_key": LONG_AK, "secret_key": LONG_SK, "server": SERVER,
            "bucket": BUCKET, "key": key, "method": method, "now_unix": FIXED,
        },
        "expected": {
            "host": req["server"],
            "path": req["path"],
            "date": headers["Date"],
            "string_to_sign": captured["string_to_sign"],
            "signature": captured["signature"],
            "authorization": headers["Authorization"],
            "headers": headers,
        },
    }


def main():
    vectors = [
        presigned_put("put_png_with_token", "test/resource/image/2025/01/01/42/a1b2c3.png",
                      "image/png", 3600, "stsgate's key layout, Content-Type signed"),
        presigned_put("put_unicode_key", "test/资源/图片 01.png", "image/png", 900,
                      "UTF-8 key with a space: percent-encoded in path and resource"),
        presigned_put("put_space_plus_key", "dir/a b+c=d&e~f.png", "image/png", 86400,
                      "space, +, =, & and ~ in the key"),
        presigned_put("put_without_content_type", "k/x.bin", None, 1800,
                      "no Content-Type: the line stays empty"),
        presigned_put("put_json_content_type", "k/data.json", "application/json", 7200,
                      "another type"),
        object_request("head_plain", "HEAD", "test/resource/image/2025/01/01/42/a1b2c3.png",
                       "stsgate's confirmation HEAD"),
        object_request("head_unicode_space_plus", "HEAD", "test/资源/a b+c.png",
                       "UTF-8, space and + in the key"),
        object_request("delete_plain", "DELETE", "test/resource/image/2025/01/01/42/a1b2c3.png",
                       "stsgate's DELETE of an upload that broke the rules"),
        object_request("delete_unicode_tilde", "DELETE", "k/图 ~x=y&z.png",
                       "UTF-8, space, ~, = and & in the key"),
    ]
    out = {
        "description": "OBS V2 (OBS signature) presigned PUT with temporary credentials "
                       "(token as x-obs-security-token query parameter) and HEAD/DELETE "
                       "signed with the long-term key (Authorization: OBS ak:sig).",
        "sdk": "esdk-obs-python==3.26.6",
        "generator": "tests/vectors/gen/huawei_object.py",
        "count": len(vectors),
        "vectors": vectors,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "huawei", "huawei_object.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print("wrote", os.path.normpath(path), len(vectors), "vectors")


if __name__ == "__main__":
    main()
