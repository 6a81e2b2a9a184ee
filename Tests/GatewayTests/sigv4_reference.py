#!/usr/bin/env python3
"""Reference SigV4 headers for SigV4SignerTests, computed by botocore.

Run: python3 Tests/GatewayTests/sigv4_reference.py
Prints, for each Bedrock-shaped request, botocore's canonical request, string to sign and the
headers it adds. The Swift test embeds this output as literals (see SigV4SignerTests.swift).

botocore's SigV4Auth does not add X-Amz-Content-SHA256 for non-S3 services, but the Anthropic and
AWS SDKs that Bedrock clients use do, and so does our signer; the script sets it on the request,
which makes botocore sign it like any other x-amz-* header and use it as the payload hash. Only the
headers our signer signs (content-type and x-amz-*) are given to botocore.
"""
import datetime
import hashlib
import json
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE//session+token/with=chars"

CASES = [
    {
        "name": "converse-stream",
        "region": "us-east-1",
        "method": "POST",
        "host": "bedrock-runtime.us-east-1.amazonaws.com",
        "path": "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        "query": None,
        "headers": [("Content-Type", "application/json")],
        "body": json.dumps(
            {"messages": [{"role": "user", "content": [{"text": "Grüße, 世界 — naïve café 🚀"}]}]},
            ensure_ascii=False,
        ).encode("utf-8"),
        "token": None,
        "time": datetime.datetime(2026, 11, 22, 1, 2, 3, 750000, tzinfo=datetime.timezone.utc),
    },
    {
        "name": "invoke-with-response-stream-session-token",
        "region": "eu-west-1",
        "method": "POST",
        "host": "bedrock-runtime.eu-west-1.amazonaws.com",
        "path": "/model/eu.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream",
        "query": None,
        "headers": [
            ("Content-Type", "application/json"),
            ("X-Amzn-Bedrock-Accept", "application/json"),
            ("X-Amz-Meta-Note", "  spaced   out\tvalue "),
        ],
        "body": '{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"héllo ✓"}]}'.encode("utf-8"),
        "token": TOKEN,
        "time": datetime.datetime(2025, 2, 28, 23, 59, 59, tzinfo=datetime.timezone.utc),
    },
    {
        "name": "list-inference-profiles",
        "region": "us-west-2",
        "method": "GET",
        "host": "bedrock.us-west-2.amazonaws.com",
        "path": "/inference-profiles",
        "query": "type=SYSTEM_DEFINED&maxResults=10&nextToken=abc%2Fdef%3D%3D",
        "headers": [],
        "body": b"",
        "token": None,
        "time": datetime.datetime(2024, 2, 29, 12, 0, 0, tzinfo=datetime.timezone.utc),
    },
]


def sign(case):
    url = "https://" + case["host"] + case["path"]
    if case["query"]:
        url += "?" + case["query"]
    # Only what our signer signs: content-type and x-amz-* (X-Amzn-* is not x-amz-*).
    headers = {
        k: v for k, v in case["headers"] if k.lower() == "content-type" or k.lower().startswith("x-amz-")
    }
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(case["body"]).hexdigest()
    request = AWSRequest(method=case["method"], url=url, headers=headers, data=case["body"])
    auth = botocore.auth.SigV4Auth(Credentials(AKID, SECRET, case["token"]), "bedrock", case["region"])
    seen = {}
    original = auth.string_to_sign

    def capture(req, canonical_request):
        seen["creq"] = canonical_request
        seen["sts"] = original(req, canonical_request)
        return seen["sts"]

    auth.string_to_sign = capture
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=case["time"]):
        auth.add_auth(request)
    return seen, request.headers


def main():
    print(f"# botocore {botocore.__version__}")
    for case in CASES:
        seen, headers = sign(case)
        print(f"== {case['name']}")
        print(f"-- epoch {case['time'].timestamp()}")
        print(f"-- body {case['body'].decode('utf-8')}")
        print("-- canonical request")
        print(seen["creq"])
        print("-- string to sign")
        print(seen["sts"])
        print("-- headers")
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"):
            if name in headers:
                print(f"{name}: {headers[name]}")


if __name__ == "__main__":
    main()
