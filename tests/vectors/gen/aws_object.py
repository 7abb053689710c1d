"""S3 HEAD/DELETE with a long-term key, signed by botocore (the request stsgate sends to
confirm an upload, and to delete one that broke the module's rules).

    python3 -m venv /tmp/venv-aws
    /tmp/venv-aws/bin/pip install boto3==1.44.5 botocore==1.44.8
    /tmp/venv-aws/bin/python tests/vectors/gen/aws_object.py > tests/vectors/aws/aws_s3_object.json

Oracle: botocore.auth.S3SigV4Auth.add_auth on an AWSRequest (what boto3's head_object /
delete_object sign), payload signing on (`x-amz-content-sha256` of the empty body), the
clock fixed by patching botocore.auth's datetime source. Fake keys only.
"""
import datetime
import json
import sys
from unittest import mock

import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

FIXED = datetime.datetime(2023, 11, 14, 22, 13, 20)

CASES = [
    ("head_path_style_ascii", "HEAD", "http://127.0.0.1:9000", "path", "uploads", "test/resource/image/2023/11/14/7/cat.png", "us-east-1"),
    ("head_virtual_host", "HEAD", "https://s3.eu-west-1.amazonaws.com", "virtual", "stsgate-bucket", "a/b/photo.jpg", "eu-west-1"),
    ("head_space_plus_unicode", "HEAD", "https://s3.ap-southeast-1.amazonaws.com", "virtual", "stsgate-bucket", "dir/a b+c/照片 1.png", "ap-southeast-1"),
    ("delete_path_style", "DELETE", "http://127.0.0.1:9000", "path", "uploads", "test/resource/video/2023/11/14/9/clip.mp4", "us-east-1"),
    ("delete_virtual_host_tilde", "DELETE", "https://s3.us-west-2.amazonaws.com", "virtual", "b-1", "k~x/=;,$@.txt", "us-west-2"),
]

AK = "AKIDLONGTERMEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def url_for(endpoint, style, bucket, key):
    enc = "/".join(percent_encode(p, safe="-_.~") for p in key.split("/"))
    if style == "path":
        return f"{endpoint}/{bucket}/{enc}"
    scheme, host = endpoint.split("://", 1)
    return f"{scheme}://{bucket}.{host}/{enc}"


def main():
    vectors = []
    for (vid, method, endpoint, style, bucket, key, region) in CASES:
        url = url_for(endpoint, style, bucket, key)
        req = AWSRequest(method=method, url=url, data=b"")
        req.context["payload_signing_enabled"] = True
        auth = S3SigV4Auth(Credentials(AK, SK), "s3", region)
        seen = {}
        cr, sts = auth.canonical_request, auth.string_to_sign
        auth.canonical_request = lambda r: seen.setdefault("canonical", cr(r))
        auth.string_to_sign = lambda r, c: seen.setdefault("sts", sts(r, c))
        with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
            auth.add_auth(req)
        canonical, string_to_sign = seen["canonical"], seen["sts"]
        headers = {k.lower(): v for k, v in req.headers.items()}
        vectors.append({
            "id": vid,
            "oracle": "botocore.auth.S3SigV4Auth.add_auth (payload signing on)",
            "input": {
                "method": method,
                "endpoint": endpoint,
                "addressing_style": style,
                "bucket": bucket,
                "key": key,
                "region": region,
                "access_key_id": AK,
                "secret_access_key": SK,
                "unix_time": int(FIXED.replace(tzinfo=datetime.timezone.utc).timestamp()),
            },
            "expected": {
                "url": url,
                "canonical_request": canonical,
                "string_to_sign": string_to_sign,
                "x-amz-date": headers["x-amz-date"],
                "x-amz-content-sha256": headers["x-amz-content-sha256"],
                "authorization": headers["authorization"],
            },
        })
    json.dump({
        "description": "S3 HEAD/DELETE signed with a long-term key (SigV4 header auth)",
        "generator": "tests/vectors/gen/aws_object.py",
        "sdk": {"boto3": "1.44.5", "botocore": botocore.__version__},
        "count": len(vectors),
        "vectors": vectors,
    }, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


main()
