#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Reproducible: run `python3 fuzz/make_corpus.py` from anywhere; the output
depends only on this file and on the reference vectors in
crates/ricloud-webhook/tests/data/ricloud-py-signatures.json (headers that
ricloud-py 3.2.0 produced). Standard library only.

Every seed is written as `seed-<name>`; stale `seed-*` files are removed
first. Other files in the corpus directories (regression inputs added by
hand, named `crash-*` or `regression-*`) are left alone.
"""

import base64
import hashlib
import hmac
import json
import random
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
VECTORS = ROOT / "crates/ricloud-webhook/tests/data/ricloud-py-signatures.json"
CORPUS = FUZZ / "corpus"

# Bodies above this are left out of the corpora (the 64 KiB vector): seeds
# stay small, and libFuzzer's default -max_len of 4096 would cut them.
MAX_SEED = 4096


def sign(secret: str, t: int, body: bytes) -> str:
    """ricloud-py's header: t=<t>,s=base64(HMAC-SHA256(secret, "<t>.<body>"))."""
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256)
    return f"t={t},s={base64.b64encode(mac.digest()).decode()}"


def write(target: str, seeds: dict) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("seed-*"):
        stale.unlink()
    for name, data in seeds.items():
        assert len(data) <= MAX_SEED, (target, name, len(data))
        (folder / f"seed-{name}").write_bytes(data)
    print(f"{target}: {len(seeds)} seeds")


def load_vectors() -> list:
    return json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]


# --- signature_header ------------------------------------------------------

GOOD_SIG = "67dXTYtIqCpNu0wFFlddu2iZYiszPaXpyOK81aQ0cr0="


def header_seeds(vectors: list) -> dict:
    seeds = {}
    for v in vectors:
        seeds["vector-" + v["name"].replace("/", "-")] = v["header"].encode()
    s = GOOD_SIG
    cases = {
        "zero-timestamp": f"t=0,s={s}",
        "max-timestamp": f"t={2**64 - 1},s={s}",
        "overflow-timestamp": f"t={2**64},s={s}",
        "long-overflow-timestamp": f"t={'9' * 30},s={s}",
        "leading-zero": f"t=01709815072,s={s}",
        "signed-timestamp": f"t=+1709815072,s={s}",
        "negative-timestamp": f"t=-1,s={s}",
        "decimal-timestamp": f"t=1709815072.5,s={s}",
        "empty-timestamp": f"t=,s={s}",
        "empty-signature": "t=1709815072,s=",
        "missing-timestamp": f"s={s}",
        "missing-signature": "t=1709815072",
        "reordered": f"s={s},t=1709815072",
        "duplicate-timestamp": f"t=1,t=1,s={s}",
        "duplicate-signature": f"t=1,s={s},s={s}",
        "unknown-field": f"t=1,s={s},v1=abc",
        "uppercase-field": f"T=1,s={s}",
        "space-after-comma": f"t=1, s={s}",
        "leading-space": f" t=1,s={s}",
        "trailing-comma": f"t=1,s={s},",
        "no-equals": f"1709815072,{s}",
        "lone-comma": ",",
        "empty": "",
        "unpadded": f"t=1,s={s[:43]}",
        "short-signature": "t=1,s=AAAA",
        "long-signature": f"t=1,s={s}AAAA",
        "36-byte-signature": "t=1,s=" + "A" * 48,
        "url-safe-minus": f"t=1,s={s[:10]}-{s[11:]}",
        "url-safe-underscore": f"t=1,s={s[:3]}_{s[4:]}",
        "foreign-byte": f"t=1,s={s[:5]}*{s[6:]}",
        "padding-in-middle": f"t=1,s={s[:20]}={s[21:]}",
        "double-padding": f"t=1,s={s[:42]}==",
        "non-canonical": f"t=1,s={s[:42]}1=",
        "too-long": "t=1,s=" + "A" * 123,
        "exactly-max-length": f"t=1,s={s}" + "," * 78,
        "hex-signature": "t=1,s=" + "ab" * 32,
    }
    for name, text in cases.items():
        seeds[name] = text.encode()
    seeds["non-ascii-timestamp"] = b"t=1\xff,s=x"
    seeds["nul-prefix"] = b"\0t=1"
    seeds["arabic-digits"] = "t=١٢,s=x".encode()
    assert len(cases["too-long"]) == 129
    assert len(cases["exactly-max-length"]) == 128
    return seeds


# --- verify ----------------------------------------------------------------


def verify_input(flags: int, clock: int, offset: int, secret: bytes, header: bytes, body: bytes) -> bytes:
    """The framing documented in fuzz/checks/verify.rs."""
    assert len(secret) < 256 and len(header) < 256
    return (
        bytes([flags])
        + struct.pack("<q", clock)
        + struct.pack("<H", offset)
        + bytes([len(secret)])
        + secret
        + bytes([len(header)])
        + header
        + body
    )


def verify_seeds(vectors: list) -> dict:
    seeds = {}
    for v in vectors:
        body = v["body"].encode()
        if len(body) > 2048:
            continue
        name = v["name"].replace("/", "-")
        secret = v["secret"].encode()
        header = v["header"].encode()
        t = v["timestamp"]
        # Clock 30 s after signing; round trips 30 s after signing too
        # (offset field: value % 901 - 300).
        seeds[name] = verify_input(1, t + 30, 330, secret, header, body)
    wc = next(v for v in vectors if v["name"] == "webhook_config.test")
    secret, header, body, t = wc["secret"].encode(), wc["header"].encode(), wc["body"].encode(), wc["timestamp"]
    seeds["no-header"] = verify_input(0, t, 300, secret, header, body)
    seeds["too-old"] = verify_input(1, t + 601, 0, secret, header, body)
    seeds["oldest"] = verify_input(1, t + 600, 900, secret, header, body)
    seeds["too-far-ahead"] = verify_input(1, t - 301, 0, secret, header, body)
    seeds["furthest-ahead"] = verify_input(1, t - 300, 0, secret, header, body)
    seeds["clock-before-1970"] = verify_input(1, -5, 300, secret, sign(wc["secret"], 0, body).encode(), body)
    seeds["max-timestamp"] = verify_input(1, -1, 300, secret, sign(wc["secret"], 2**64 - 1, b"{}").encode(), b"{}")
    seeds["empty-secret"] = verify_input(1, t, 300, b"", header, body)
    seeds["empty-body"] = verify_input(1, 1_700_000_000, 300, b"k", sign("k", 1_700_000_000, b"").encode(), b"")
    long_secret = ("x" * 100).encode()
    seeds["long-secret"] = verify_input(1, t, 300, long_secret, sign("x" * 100, t, body).encode(), body)
    seeds["malformed-header"] = verify_input(1, t, 300, secret, b"t=01,s=", body)
    return seeds


# --- event -----------------------------------------------------------------

TASK = {
    "id": "f3e4a8b2-5c6d-4e7f-8a9b-0c1d2e3f4a5b", "resource": "task", "organisation": 4954, "key": 7,
    "user": "u1", "source": "s1", "session": "x1", "poll": "p1", "source_type": "icloud.account",
    "type": "fetch.data", "target": "messages.sms", "state": "succeeded",
    "results": {"data": [{"id": "r1", "resource": "result", "task": "f3e4", "identifier": "messages.sms",
                          "url": "https://files.example/r1", "checksum": "d41d8cd98f00b204e9800998ecf8427e",
                          "size": 1234, "state": "available", "date_created": "2026-11-27T10:42:59Z",
                          "date_consumed": None, "date_deleted": None}], "has_more": False},
    "error": None, "date_created": "2026-11-27T10:40:00Z", "date_started": "2026-11-27T10:41:00Z",
    "date_completed": "2026-11-27T10:42:59Z",
}
POLL = {
    "id": "p1", "resource": "poll", "organisation": 4954, "key": 7, "user": "u1", "source": "s1",
    "session": "x1", "subscription": None, "tasks_pending": ["t3"], "tasks_processing": [],
    "tasks_succeeded": ["t1", "t2"], "tasks_failed": [], "tasks_suspended": [], "results": [],
    "errors": [], "state": "processing", "date_created": "2026-11-27T10:40:00Z",
}
SESSION = {
    "id": "x1", "resource": "session", "organisation": 4954, "key": 7, "user": "u1",
    "source": {"id": "s1", "type": "icloud.account"}, "state": "expired", "error": None,
    "date_created": "2026-11-27T10:00:00Z", "date_expired": "2026-11-27T11:00:00Z",
}
CONFIG = {
    "id": "d13c513a-42f8-4da1-97b1-165f0971b7c4", "resource": "webhook_config", "organisation": 4954,
    "url": "https://receiver.example.com/webhooks", "state": "new", "date_created": "2026-11-27T10:42:59Z",
}


def event(kind: str, action: str, data, **extra) -> dict:
    e = {"id": "2abc5619-25ab-489b-967e-4d928a831817", "resource": "event", "type": kind, "action": action,
         "data": data, "state": "pending", "retries": 0, "date_created": "2026-11-27T10:43:00.123Z",
         "date_delivered": None}
    e.update(extra)
    return e


def event_seeds(vectors: list) -> dict:
    seeds = {}
    for v in vectors:
        body = v["body"].encode()
        if "/" not in v["name"] and len(body) <= MAX_SEED:
            seeds["vector-" + v["name"]] = body
    slugs = {
        "webhook_config.test": CONFIG, "session.expired": SESSION, "poll.created": POLL,
        "poll.completed": dict(POLL, state="completed"), "task.created": dict(TASK, state="pending"),
        "task.succeeded": TASK, "task.failed": dict(TASK, state="failed", error="auth-failed"),
    }
    for slug, data in slugs.items():
        kind, action = slug.split(".")
        seeds[slug] = json.dumps(event(kind, action, data)).encode()
    as_json = lambda value: json.dumps(value, ensure_ascii=False).encode()
    seeds["unknown-slug"] = as_json(event("invoice", "paid", {"id": "inv1", "amount": 3}, new_field={"a": 1}))
    seeds["minimal"] = b'{"id":"x","type":"task","action":"succeeded"}'
    seeds["misfit-data"] = as_json(event("task", "succeeded", "oops"))
    seeds["data-without-id"] = as_json(event("poll", "completed", {"state": "completed"}))
    seeds["numeric-ids"] = as_json(event("task", "succeeded", dict(TASK, id=12, organisation=-4, key=2**63)))
    seeds["float-id"] = as_json(event("session", "expired", dict(SESSION, id=1.5)))
    seeds["bare-array-results"] = as_json(event("task", "succeeded", dict(TASK, results=[{"id": "r"}])))
    seeds["unknown-states"] = as_json(event("task", "succeeded", dict(TASK, state="hibernating",
                                                                     results=[{"id": "r", "state": "lost"}])))
    seeds["null-everywhere"] = as_json({"id": "e", "resource": None, "type": "poll", "action": "created",
                                        "data": None, "state": None, "retries": None, "date_created": None,
                                        "date_delivered": None})
    seeds["escaped-strings"] = b'{"id":"\\u0032abc","type":"t\\u0061sk","action":"succ\\"eeded","data":{"id":"\\ud83d\\ude80"}}'
    seeds["pretty"] = json.dumps(event("webhook_config", "test", CONFIG), indent=2).encode()
    seeds["duplicate-key"] = b'{"id":"a","id":"b","type":"t","action":"a"}'
    seeds["duplicate-data-key"] = b'{"id":"a","type":"task","action":"a","data":{"id":"x","id":"y"}}'
    seeds["data-out-of-range"] = b'{"id":"a","type":"task","action":"a","data":{"id":"x","n":1e400}}'
    seeds["big-numbers"] = b'{"id":"a","type":"poll","action":"created","retries":18446744073709551615,"data":{"id":"p","errors":[1e308,-0.0,123456789012345678901234567890]}}'
    seeds["negative-retries"] = b'{"id":"a","type":"t","action":"a","retries":-1}'
    seeds["deep-nesting"] = b'{"id":"a","type":"t","action":"a","data":' + b"[" * 200 + b"]" * 200 + b"}"
    seeds["empty-id"] = b'{"id":"","type":"t","action":"a"}'
    seeds["id-not-string"] = b'{"id":5,"type":"t","action":"a"}'
    seeds["missing-action"] = b'{"id":"a","type":"t"}'
    seeds["array"] = b"[1]"
    seeds["string"] = b'"event"'
    seeds["empty"] = b""
    seeds["whitespace"] = b" \n\t"
    seeds["truncated"] = b'{"id":'
    seeds["not-json"] = b"not json"
    seeds["non-utf8"] = b'{"id":"\xff","type":"t","action":"a"}'
    seeds["lone-surrogate"] = b'{"id":"\\ud800","type":"t","action":"a"}'
    seeds["trailing-garbage"] = b'{"id":"a","type":"t","action":"a"} x'
    seeds["bom"] = b'\xef\xbb\xbf{"id":"a","type":"t","action":"a"}'
    return seeds


# --- receiver --------------------------------------------------------------
#
# The input is decoded with `arbitrary` 1.x (the `Scenario` type of
# fuzz/checks/receiver.rs). The encoder below mirrors how its derive reads
# bytes: integers little-endian, `bool` = one byte's low bit, an enum = a
# `u32` scaled onto its variants, then the variant's fields, a `Vec` = a
# "one more" byte (odd) before each element and an even byte to end, fields
# in declaration order. Missing bytes read as zeros, so any bytes decode;
# these seeds just start the fuzzer on meaningful scenarios.


def u8(n: int) -> bytes:
    return bytes([n & 0xFF])


def u16(n: int) -> bytes:
    return struct.pack("<H", n)


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def variant(index: int, count: int) -> bytes:
    assert 0 <= index < count
    return u32((index * 2**32 + count - 1) // count)


def vec(items: list) -> bytes:
    return b"".join(b"\x01" + item for item in items) + b"\x00"


VIEWS = ["Event", "Task", "Poll", "Session", "WebhookConfig"]
BEHAVIOURS = ["Succeed", "Retry", "Acknowledge", "Panic", "PanicBeforeFuture",
              "YieldThenSucceed", "YieldThenRetry", "YieldThenPanic"]
PATTERNS = ["*", "task.*", "task.succeeded", "poll.*", "poll.completed", "session.expired",
            "webhook_config.test", "invoice.*"]
SLUGS = ["task.succeeded", "task.failed", "task.created", "poll.completed", "poll.created",
         "session.expired", "webhook_config.test", "invoice.paid", "task.test"]
DATA = ["Fitting", "Minimal", "Misfit", "Missing", "Swapped", "BadId"]
SHIFTS = ["Now", "Inside", "TooOld", "TooFarAhead", "Edge"]
SIGNERS = ["Current", "Previous", "Wrong"]
MUTATIONS = ["PathId", "TrailingSlash", "Prefix", "MissingHeader", "GarbleHeader", "RawHeader",
             "ExtraHeader", "FlipBody", "TruncateBody", "AppendBody", "ReplaceBody", "Resign", "Method"]


def route(pattern: str, view: str) -> bytes:
    return u8(PATTERNS.index(pattern)) + variant(VIEWS.index(view), len(VIEWS))


def behaviour(name: str) -> bytes:
    return variant(BEHAVIOURS.index(name), len(BEHAVIOURS))


def mutation(name: str, *fields: bytes) -> bytes:
    return variant(MUTATIONS.index(name), len(MUTATIONS)) + b"".join(fields)


def delivery(event=0, slug="task.succeeded", data="Fitting", retries=0, compact=False, escape_id=False,
             shift=("Now", b""), signer="Current", mutations=()) -> bytes:
    data_bytes = variant(DATA.index(data), len(DATA)) + (u8(3) if data == "Swapped" else b"")
    shift_name, shift_payload = shift
    return (u8(event) + u8(SLUGS.index(slug)) + data_bytes + u8(retries) + u8(compact) + u8(escape_id)
            + variant(SHIFTS.index(shift_name), len(SHIFTS)) + shift_payload
            + variant(SIGNERS.index(signer), len(SIGNERS)) + vec(list(mutations)))


def step(first: bytes, second: bytes = None, kind: int = 0, advance: int = 1) -> bytes:
    if second is not None:
        kind = max(kind, 240)
    return u8(kind) + u8(advance) + first + (second if second is not None else delivery())


def scenario(routes: list, behaviours: list, steps: list, rotation: bool = False) -> bytes:
    # `steps` is the last field, read with `arbitrary_take_rest`.
    return u8(rotation) + vec(routes) + vec(behaviours) + vec(steps)


def receiver_seeds() -> dict:
    every = [route("*", "Event"), route("task.*", "Task"), route("poll.*", "Poll"),
             route("session.expired", "Session")]
    seeds = {}
    seeds["every-slug-handled"] = scenario(
        every + [route("webhook_config.test", "WebhookConfig")], [behaviour("Succeed")],
        [step(delivery(event=i, slug=slug)) for i, slug in enumerate(SLUGS)])
    seeds["redelivery-after-failures"] = scenario(
        [route("*", "Event"), route("task.*", "Task")],
        [behaviour(b) for b in ["Retry", "Panic", "PanicBeforeFuture", "Succeed", "Acknowledge"]],
        [step(delivery(event=1)) for _ in range(6)])
    seeds["duplicates-and-memory-end"] = scenario(
        [route("*", "Event")], [behaviour("Succeed")],
        [step(delivery()), step(delivery(compact=True)), step(delivery(), advance=254),
         step(delivery(), advance=255), step(delivery(escape_id=True))])
    seeds["racing-redeliveries"] = scenario(
        [route("*", "Event"), route("task.*", "Task")],
        [behaviour(b) for b in ["YieldThenSucceed", "YieldThenRetry", "YieldThenPanic", "Succeed"]],
        [step(delivery(event=2), delivery(event=2)), step(delivery(event=2), delivery(event=2)),
         step(delivery(event=0), delivery(event=1)), step(delivery(event=2), delivery(event=2))])
    seeds["typed-views-misfit"] = scenario(
        every, [behaviour("Succeed")],
        # Each step past the deduplication memory, so each one dispatches.
        [step(delivery(slug=slug, data=data), advance=255)
         for slug in ("task.succeeded", "poll.created") for data in DATA])
    seeds["typed-views-misfit-2"] = scenario(
        every + [route("webhook_config.test", "WebhookConfig")], [behaviour("Succeed")],
        [step(delivery(slug=slug, data=data), advance=255)
         for slug in ("session.expired", "webhook_config.test") for data in DATA])
    seeds["time-window"] = scenario(
        [route("*", "Event")], [behaviour("Succeed")],
        [step(delivery(event=i % 3, shift=shift)) for i, shift in enumerate([
            ("Inside", u16(0)), ("Inside", u16(900)), ("TooOld", u32(0)), ("TooOld", u32(10**9)),
            ("TooFarAhead", u32(0)), ("Edge", u8(0)), ("Edge", u8(1)), ("Edge", u8(2)), ("Edge", u8(3))])])
    seeds["rotation"] = scenario(
        [route("*", "Event")], [behaviour("Succeed")],
        [step(delivery(event=i, signer=signer)) for i, signer in enumerate(SIGNERS)], rotation=True)
    seeds["no-rotation"] = scenario(
        [route("*", "Event")], [behaviour("Succeed")],
        [step(delivery(event=i, signer=signer)) for i, signer in enumerate(SIGNERS)])
    mutations = [
        [mutation("PathId", u8(1))], [mutation("PathId", u8(4))], [mutation("PathId", u8(5))],
        [mutation("TrailingSlash")], [mutation("TrailingSlash"), mutation("TrailingSlash")],
        [mutation("Prefix", u8(1))], [mutation("Prefix", u8(2))], [mutation("Prefix", u8(3))],
        [mutation("Prefix", u8(4))], [mutation("Prefix", u8(1)), mutation("PathId", u8(4))],
        [mutation("MissingHeader")], [mutation("GarbleHeader", u8(3), u8(ord("9")))],
        [mutation("GarbleHeader", u8(20), u8(ord("-")))], [mutation("RawHeader", vec([b"t", b"="]))],
        [mutation("ExtraHeader", u8(1), u8(0))], [mutation("ExtraHeader", u8(0), u8(2))],
        [mutation("FlipBody", u16(7), u8(0))], [mutation("TruncateBody", u16(40))],
        [mutation("AppendBody", vec([b" "]))], [mutation("AppendBody", vec([b" "])), mutation("Resign")],
        [mutation("ReplaceBody", vec([b"{", b"}"])), mutation("Resign")],
        [mutation("ReplaceBody", vec([c.to_bytes(1, "big") for c in b"not json"])), mutation("Resign")],
        [mutation("FlipBody", u16(9), u8(1)), mutation("Resign")],
        [mutation("Method", u8(0))], [mutation("Method", u8(6))], [mutation("Method", u8(7))],
    ]
    # At most 16 steps a scenario (the check ignores the rest).
    for part in range(0, len(mutations), 13):
        seeds[f"mutations-{part // 13}"] = scenario(
            [route("*", "Event")], [behaviour("Succeed")],
            [step(delivery(event=i % 3, mutations=m), advance=255)
             for i, m in enumerate(mutations[part:part + 13])])
    seeds["shutdown"] = scenario(
        [route("*", "Event")], [behaviour("Succeed")],
        [step(delivery()), step(delivery(event=1), kind=255), step(delivery(event=1))])
    # Plain random bytes too (uniform: short scenarios full of mutations).
    rng = random.Random(20261127)
    for i in range(4):
        seeds[f"random-{i:02}"] = bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 700)))
    return seeds


# --- http ------------------------------------------------------------------

HTTP_SECRET = "s3cr3t with spaces & ünïcode"  # fuzz/checks/http.rs's


def request(method: str, path: str, headers: list, body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode() + body


def http_seeds(vectors: list) -> dict:
    seeds = {}
    valid = [v for v in vectors if "/" not in v["name"] and v["secret"] == HTTP_SECRET]
    for v in valid:
        body = v["body"].encode()
        event_id = json.loads(body)["id"]
        seeds["vector-" + v["name"]] = request("POST", f"/webhooks/{event_id}", [
            ("Host", "receiver.example.com"), ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))), ("Ricloud-Signature", v["header"])], body)
    wc = valid[0]
    body, header = wc["body"].encode(), wc["header"]
    path = "/webhooks/" + json.loads(body)["id"]
    base = [("Host", "r"), ("Content-Type", "application/json")]
    sig = [("Ricloud-Signature", header)]
    length = [("Content-Length", str(len(body)))]
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    seeds["chunked"] = request("POST", path, base + sig + [("Transfer-Encoding", "chunked")], chunked)
    seeds["trailing-slash"] = request("POST", path + "/", base + sig + length, body)
    seeds["keep-alive-twice"] = request("POST", path, base + sig + length, body) * 2
    seeds["http-1.0"] = request("POST", path, base + sig + length, body, "HTTP/1.0")
    seeds["expect-continue"] = request("POST", path, base + sig + length + [("Expect", "100-continue")], body)
    seeds["lowercase-headers"] = request("POST", path, [(k.lower(), v) for k, v in base + sig + length], body)
    seeds["two-signatures"] = request("POST", path, base + sig + sig + length, body)
    seeds["no-signature"] = request("POST", path, base + length, body)
    seeds["malformed-signature"] = request("POST", path, base + [("Ricloud-Signature", "t=01,s=")] + length, body)
    seeds["wrong-path-id"] = request("POST", "/webhooks/d921bf95-cc9f-4851-b6ab-9f1ab79db4df", base + sig + length, body)
    seeds["text-plain"] = request("POST", path, [("Host", "r"), ("Content-Type", "text/plain")] + sig + length, body)
    seeds["vendor-json"] = request("POST", path, [("Host", "r"), ("Content-Type", "application/vnd.ricloud+json; charset=utf-8")] + sig + length, body)
    seeds["no-content-type"] = request("POST", path, [("Host", "r")] + sig + length, body)
    seeds["too-large"] = request("POST", path, base + sig + [("Content-Length", "999999999")], body[:10])
    seeds["short-body"] = request("POST", path, base + sig + length, body[:20])
    seeds["get-webhook"] = request("GET", path, [("Host", "r")])
    seeds["healthz"] = request("GET", "/healthz", [("Host", "r")])
    seeds["head-healthz"] = request("HEAD", "/healthz", [("Host", "r")])
    seeds["other-path"] = request("POST", "/other", base + length, body)
    seeds["webhooks-root"] = request("POST", "/webhooks/", base + sig + length, body)
    seeds["nested-path"] = request("POST", path + "/x", base + sig + length, body)
    seeds["query"] = request("POST", path + "?a=1", base + sig + length, body)
    seeds["absolute-uri"] = request("POST", "http://r" + path, base + sig + length, body)
    seeds["not-json-body"] = request("POST", path, base + [("Ricloud-Signature", sign(HTTP_SECRET, 1, b"hello")), ("Content-Length", "5")], b"hello")
    seeds["bad-request-line"] = b"POST\r\n\r\n"
    seeds["header-without-colon"] = b"POST /webhooks/x HTTP/1.1\r\nHost r\r\n\r\n"
    seeds["bad-version"] = b"POST /webhooks/x HTTP/9.9\r\nHost: r\r\n\r\n"
    seeds["bad-chunk"] = request("POST", path, base + sig + [("Transfer-Encoding", "chunked")], b"zz\r\n")
    seeds["both-lengths"] = request("POST", path, base + sig + length + [("Transfer-Encoding", "chunked")], chunked)
    seeds["empty"] = b""
    seeds["garbage"] = bytes(range(256))
    return seeds


FORWARDED_SECRET = "fuzz-forwarded-secret"


def forwarded_input(flags: int, signature: str, received: str, body: bytes) -> bytes:
    """fuzz/checks/forwarded.rs's framing."""
    sig, rec = signature.encode(), received.encode()
    return bytes([flags, len(sig)]) + sig + bytes([len(rec)]) + rec + body


def forwarded_seeds(vectors: list) -> dict:
    seeds = {}
    t = 1_700_000_000
    body = json.dumps(event("task", "succeeded", {"id": "t1", "state": "succeeded"})).encode()
    sig = sign(FORWARDED_SECRET, t, body)
    seeds["valid"] = forwarded_input(3, sig, str(t * 1000 + 1500), body)
    seeds["window-old-edge"] = forwarded_input(3, sig, str((t + 600) * 1000 + 999), body)
    seeds["stale"] = forwarded_input(3, sig, str((t + 601) * 1000), body)
    seeds["ahead-edge"] = forwarded_input(3, sig, str((t - 300) * 1000), body)
    seeds["no-received-at"] = forwarded_input(1, sig, "", body)
    seeds["no-signature"] = forwarded_input(2, "", str(t * 1000), body)
    seeds["received-not-a-number"] = forwarded_input(3, sig, "soon", body)
    seeds["forged-body"] = forwarded_input(3, sig, str(t * 1000), body.replace(b"task", b"poll"))
    seeds["other-secret"] = forwarded_input(3, sign("another", t, body), str(t * 1000), body)
    for i, v in enumerate(vectors[:4]):
        b = v["body"].encode()
        if len(b) < MAX_SEED - 200:
            seeds[f"vector-{i}"] = forwarded_input(3, sign(FORWARDED_SECRET, t, b), str(t * 1000), b)
    seeds["not-an-event"] = forwarded_input(3, "t=1,s=AAAA", "12", b"[1,2]")
    return seeds


def main() -> None:
    vectors = load_vectors()
    write("signature_header", header_seeds(vectors))
    write("verify", verify_seeds(vectors))
    write("event", event_seeds(vectors))
    write("receiver", receiver_seeds())
    write("http", http_seeds(vectors))
    write("forwarded", forwarded_seeds(vectors))


if __name__ == "__main__":
    main()
