"""Interop part (a): events signed by ricloud-py's own `ricloud.signing` are
accepted by our receiver, and tampered ones refused.

Usage: python interop_sign.py BASE_URL SECRET
BASE_URL is the receiver's webhook prefix, e.g. http://127.0.0.1:8080/webhooks.
Prints one line per check and exits non-zero if any fails.
"""

import json
import sys
import time
import urllib.error
import urllib.request
import uuid

from ricloud.signing import Signature, hmac_sign


def post(url, body, header):
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if header is not None:
        request.add_header("Ricloud-Signature", header)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def event(slug, pretty=False):
    kind, action = slug.split(".")
    data = {"id": str(uuid.uuid4()), "resource": kind, "state": "succeeded",
            "note": "Größe 🚀"}
    body = {"id": str(uuid.uuid4()), "resource": "event", "type": kind,
            "action": action, "data": data, "state": "pending", "retries": 0,
            "date_created": "2026-11-27T10:43:00.123Z", "date_delivered": None}
    text = json.dumps(body, indent=2 if pretty else None, ensure_ascii=False)
    return body["id"], text


def main():
    base, secret = sys.argv[1].rstrip("/"), sys.argv[2]
    failures = 0
    checks = 0

    def check(name, got, want):
        nonlocal failures, checks
        checks += 1
        ok = got == want
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} (a) {name}: {got} (want {want})")

    slugs = ["webhook_config.test", "session.expired", "poll.created",
             "poll.completed", "task.created", "task.succeeded", "task.failed",
             "brand_new.event"]
    for i, slug in enumerate(slugs):
        event_id, text = event(slug, pretty=i % 2 == 0)
        # Exactly what the API does: sign "<t>.<body>" with the shared secret.
        header = Signature.sign(text, secret).to_header()
        url = f"{base}/{event_id}"
        body = text.encode("utf-8")
        check(f"{slug} signed by ricloud.signing", post(url, body, header), 200)
        check(f"{slug} redelivered", post(url, body, header), 200)

    event_id, text = event("task.succeeded")
    url = f"{base}/{event_id}"
    header = Signature.sign(text, secret).to_header()
    tampered = text.replace("succeeded", "failed", 1).encode("utf-8")
    check("tampered body", post(url, tampered, header), 401)
    wrong = Signature.sign(text, secret + "x").to_header()
    check("wrong secret", post(url, text.encode("utf-8"), wrong), 401)
    # ricloud-py's own HMAC for a timestamp one hour old.
    t = int(time.time()) - 3600
    expired = Signature(hmac_sign(f"{t}.{text}", secret), t).to_header()
    check("expired timestamp", post(url, text.encode("utf-8"), expired), 401)
    check("missing header", post(url, text.encode("utf-8"), None), 401)
    check("malformed header", post(url, text.encode("utf-8"), "t=1,s=abc"), 400)
    other = f"{base}/{uuid.uuid4()}"
    check("path id differs", post(other, text.encode("utf-8"), header), 400)
    check("valid after all that", post(url, text.encode("utf-8"), header), 200)

    print(f"interop (a): {checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
