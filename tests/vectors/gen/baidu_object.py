#!/usr/bin/env python3
"""Vectors for BOS object requests: the presigned PUT (temporary key + session token) and
stsgate's long-term-key HEAD / DELETE, computed by the official Baidu Python SDK.

Oracle: bce-python-sdk==0.9.79 (Python 3.11). Run outside the repository:

    python3 -m venv /tmp/venv-baidu
    /tmp/venv-baidu/bin/pip install bce-python-sdk==0.9.79
    /tmp/venv-baidu/bin/python tests/vectors/gen/baidu_object.py

It writes tests/vectors/baidu/baidu_object.json. All keys are fake; the clock is fixed
(baidubce.utils.get_canonical_time is patched for the HEAD/DELETE date), nothing is random,
and no request leaves the process (the SDK's HTTP send is replaced by a recorder).

Presigned PUT: BosClient.generate_pre_signed_url(..., httpmethod=b"PUT") with a
BceClientConfiguration carrying the temporary credentials and security_token. The SDK puts
the token in the query (`x-bce-security-token`, signed as part of the canonical query) and,
for any method but GET/HEAD, ignores `headers_to_sign` and signs `host` alone. stsgate also
signs the `content-type` it hands out, so for the cases with a content type the SDK's own
signer (bce_v1_signer.sign) is called by generate_pre_signed_url with
headers_to_sign=[b"content-type", b"host"] (a wrapper substitutes the list the SDK forced;
everything else, URL assembly included, is the SDK's). The case without a content type is
the SDK's output untouched.

HEAD/DELETE: BosClient.get_object_meta_data / delete_object with the long-term key; the
request the SDK would send (method, URI, headers, Authorization) is recorded. The SDK signs
its default header set (host, content-length: 0, x-bce-date) and writes `//` for the signed
header list; stsgate lists the names, so `expected.authorization` is the same SDK signer
called with headers_to_sign=[b"content-length", b"host", b"x-bce-date"] over the recorded
headers (the same canonical request, so the same signature), and
`expected.python_sdk_authorization` is the header as head_object sent it.
"""

import json
import os
import sys

import baidubce
import baidubce.protocol
from baidubce import utils
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.http import bce_http_client
from baidubce.retry.retry_policy import NoRetryPolicy
from baidubce.services.bos import bos_client as bos_client_module
from baidubce.services.bos.bos_client import BosClient

SDK_VERSION = "0.9.79"
assert (baidubce.SDK_VERSION.decode() if isinstance(baidubce.SDK_VERSION, bytes)
        else baidubce.SDK_VERSION) == SDK_VERSION

LONG_AK = "bdfake0000example0001ak"
LONG_SK = "bdFAKE/0000+EXAMPLE+secret/key=0001"
TMP_AK = "d1a2b3c4e5f60718293a4b5c0001"
TMP_SK = "fakeBceTmpSecret1/+abcdef0123456789"
TOKEN = "ZjkyZmQFAKE1session+token/with=specials"
T0 = 1735689600  # 2025-01-01T00:00:00Z
BUCKET = "stsgate-demo"

_orig_canonical_time = utils.get_canonical_time


def b(s):
    return s.encode("utf-8") if isinstance(s, str) else s


def t(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def config(endpoint, ak, sk, token=None, cname=False):
    c = BceClientConfiguration(
        credentials=BceCredentials(b(ak), b(sk)),
        endpoint=b(endpoint),
        security_token=b(token) if token else None,
        # The scheme the endpoint names (else the SDK appends :443 to an https Host).
        protocol=baidubce.protocol.HTTPS if endpoint.startswith("https://")
        else baidubce.protocol.HTTP,
    )
    c.retry_policy = NoRetryPolicy()
    if cname:
        c.cname_enabled = True
    return c


def stages(sk, prefix, method, path, params, headers, to_sign):
    """Every stage, each from the SDK's own helpers."""
    import hashlib
    import hmac

    signing_key = hmac.new(b(sk), b(prefix), hashlib.sha256).hexdigest()
    query = utils.get_canonical_querystring(params, True)
    canonical_headers = bce_v1_signer._get_canonical_headers(headers, to_sign)
    string_to_sign = b"\n".join([b(method), b(path), query, canonical_headers])
    signature = hmac.new(b(signing_key), string_to_sign, hashlib.sha256).hexdigest()
    return {
        "signing_key_hex": signing_key,
        "canonical_uri": t(path),
        "canonical_query_string": t(query),
        "canonical_headers": t(canonical_headers),
        "string_to_sign": t(string_to_sign),
        "signature": signature,
    }


def presigned_put(name, endpoint, key, content_type, expiration, cname=False):
    client = BosClient(config(endpoint, TMP_AK, TMP_SK, TOKEN, cname))
    seen = {}
    real_sign = bce_v1_signer.sign

    def sign(credentials, method, path, headers, params, timestamp=0,
             expiration_in_seconds=1800, headers_to_sign=None):
        if content_type is not None:
            headers_to_sign = [b"content-type", b"host"]
        seen.update(method=method, path=path, headers=dict(headers),
                    params=dict(params), to_sign=headers_to_sign)
        out = real_sign(credentials, method, path, headers, params, timestamp,
                        expiration_in_seconds, headers_to_sign)
        seen["authorization"] = out
        return out

    bos_client_module.bce_v1_signer.sign = sign
    try:
        headers = {b"Content-Type": b(content_type)} if content_type else {}
        url = client.generate_pre_signed_url(
            BUCKET, key, timestamp=T0, expiration_in_seconds=expiration,
            headers=headers, httpmethod=b"PUT")
    finally:
        bos_client_module.bce_v1_signer.sign = real_sign
    prefix = "bce-auth-v1/%s/%s/%d" % (TMP_AK, t(utils.get_canonical_time(T0)), expiration)
    exp = stages(TMP_SK, prefix, b"PUT", seen["path"], seen["params"], seen["headers"],
                 seen["to_sign"])
    assert exp["signature"] == t(seen["authorization"]).rsplit("/", 1)[1]
    exp.update(
        canonical_time=t(utils.get_canonical_time(T0)),
        auth_string_prefix=prefix,
        host=t(seen["headers"][b"Host"] if b"Host" in seen["headers"] else seen["headers"]["Host"]),
        authorization=t(seen["authorization"]),
        url=t(url),
        upload_headers={"Content-Type": content_type} if content_type else {},
        signed_headers=[t(h) for h in sorted(seen["to_sign"])],
    )
    return {
        "name": name,
        "kind": "presigned_put",
        "input": {
            "access_key": TMP_AK, "secret_key": TMP_SK, "security_token": TOKEN,
            "sdk_endpoint": endpoint, "cname_enabled": cname, "bucket": BUCKET,
            "key": key, "content_type": content_type, "timestamp_unix": T0,
            "expiration_seconds": expiration,
        },
        "expected": exp,
    }


class Recorded(Exception):
    pass


def object_request(name, method, endpoint, key, at, cname=False):
    client = BosClient(config(endpoint, LONG_AK, LONG_SK, None, cname))
    sent = {}

    def fake_send(conn, http_method, uri, headers, body, send_buf_size):
        sent.update(method=http_method, uri=uri, headers=dict(headers))
        raise Recorded()

    real_send = bce_http_client._send_http_request
    real_conn = bce_http_client._get_connection
    bce_http_client._send_http_request = fake_send
    bce_http_client._get_connection = lambda *a, **k: None
    utils.get_canonical_time = lambda timestamp=0: _orig_canonical_time(timestamp or at)
    try:
        try:
            if method == "HEAD":
                client.get_object_meta_data(BUCKET, key)
            else:
                client.delete_object(BUCKET, key)
        except Exception:
            pass
    finally:
        bce_http_client._send_http_request = real_send
        bce_http_client._get_connection = real_conn
        utils.get_canonical_time = _orig_canonical_time
    assert sent, "the SDK sent nothing"
    headers = sent["headers"]
    path = sent["uri"]
    assert b"?" not in b(path)
    expiration = 1800
    ts = t(_orig_canonical_time(at))
    prefix = "bce-auth-v1/%s/%s/%d" % (LONG_AK, ts, expiration)
    signed = {k: v for k, v in headers.items() if t(k).lower() != "authorization"}
    listed = bce_v1_signer.sign(
        BceCredentials(b(LONG_AK), b(LONG_SK)), b(method), path, signed, {}, at, expiration,
        [b"content-length", b"host", b"x-bce-date"])
    exp = stages(LONG_SK, prefix, b(method), path, {}, signed, None)
    py_auth = t(headers[b"Authorization"] if b"Authorization" in headers else headers["Authorization"])
    assert py_auth == "%s//%s" % (prefix, exp["signature"]), py_auth
    assert t(listed) == "%s/content-length;host;x-bce-date/%s" % (prefix, exp["signature"])

    def h(name):
        for k, v in headers.items():
            if t(k).lower() == name:
                return t(v)
        raise KeyError(name)

    scheme = "http" if endpoint.startswith("http://") else "https"
    exp.update(
        canonical_time=ts,
        auth_string_prefix=prefix,
        host=h("host"),
        url="%s://%s%s" % (scheme, h("host"), t(path)),
        authorization=t(listed),
        python_sdk_authorization=py_auth,
        headers={"content-length": h("content-length"), "x-bce-date": h("x-bce-date")},
        signed_headers=["content-length", "host", "x-bce-date"],
    )
    return {
        "name": name,
        "kind": "object_request",
        "input": {
            "access_key": LONG_AK, "secret_key": LONG_SK, "method": method,
            "sdk_endpoint": endpoint, "cname_enabled": cname, "bucket": BUCKET, "key": key,
            "timestamp_unix": at, "expiration_seconds": expiration,
        },
        "expected": exp,
    }


def main():
    vectors = [
        presigned_put("put_png_with_content_type", "https://bj.bcebos.com",
                      "test/resource/image/2025/01/01/7/0b7c.png", "image/png", 3600),
        presigned_put("put_unicode_key", "https://gz.bcebos.com",
                      "test/照片/猫 咪.jpg", "image/jpeg", 900),
        presigned_put("put_key_with_spaces_and_plus", "https://bj.bcebos.com",
                      "test/a b+c/d~e(1)&x=y.mp4", "video/mp4", 43200),
        presigned_put("put_without_content_type_sdk_untouched", "https://bj.bcebos.com",
                      "test/raw/blob.bin", None, 1800),
        presigned_put("put_custom_host_with_port", "http://stsgate-demo.bos.localhost:8080",
                      "test/resource/video/clip 1.mp4", "video/mp4", 600, cname=True),
        object_request("head_plain_key", "HEAD", "https://bj.bcebos.com",
                       "test/resource/image/2025/01/01/7/0b7c.png", T0 + 10),
        object_request("head_unicode_key", "HEAD", "https://gz.bcebos.com",
                       "test/照片/猫 咪.jpg", T0 + 61),
        object_request("head_key_with_spaces_and_plus", "HEAD", "https://bj.bcebos.com",
                       "test/a b+c/d~e(1)&x=y.mp4", T0 + 3599),
        object_request("delete_plain_key", "DELETE", "https://bj.bcebos.com",
                       "test/resource/image/2025/01/01/7/0b7c.png", T0 + 20),
        object_request("delete_key_with_spaces_and_plus", "DELETE", "https://su.bcebos.com",
                       "test/a b+c/d~e(1)&x=y.mp4", T0 + 86400),
        object_request("head_custom_host_with_port", "HEAD",
                       "http://stsgate-demo.bos.localhost:8080",
                       "test/resource/video/clip 1.mp4", T0 + 5, cname=True),
    ]
    out = {
        "algorithm": "BOS object requests signed with bce-auth-v1: presigned PUT (temporary "
                     "key, x-bce-security-token in the query) and the long-term-key HEAD/DELETE",
        "oracle": {
            "package": "bce-python-sdk",
            "version": SDK_VERSION,
            "functions": [
                "BosClient.generate_pre_signed_url(httpmethod=PUT)",
                "BosClient.get_object_meta_data", "BosClient.delete_object",
                "baidubce.auth.bce_v1_signer.sign",
                "baidubce.auth.bce_v1_signer._get_canonical_headers",
                "baidubce.utils.get_canonical_querystring",
            ],
        },
        "generated_by": "tests/vectors/gen/baidu_object.py",
        "python": "%d.%d.%d" % sys.version_info[:3],
        "note": "All keys are fake. Deterministic: fixed timestamps, no network. See the "
                "generator's docstring for the content-type signing and the listed "
                "signedHeaders.",
        "count": len(vectors),
        "vectors": vectors,
    }
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "baidu",
                        "baidu_object.json")
    with open(dest, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %d vectors to %s" % (len(vectors), os.path.normpath(dest)))


if __name__ == "__main__":
    main()
