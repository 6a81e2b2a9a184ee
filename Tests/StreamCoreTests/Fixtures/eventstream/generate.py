#!/usr/bin/env python3
"""Writes Sluice's own event-stream vectors (encoded/ and decoded/), beside this script.

An oracle independent of the Swift code under test: framing written by hand here, CRC-32 from
Python's zlib. The layout follows AWS's public vectors (../shared/eventstream-vectors/README.md):
`encoded/<kind>/<case>` holds raw bytes; `decoded/positive/<case>` a JSON list of the messages the
bytes hold, each in AWS's per-message format; `decoded/negative/<case>` a JSON object naming the
error class of EVENTSTREAM.md §7, the stream offsets of the failing message and field, and how many
messages decode before the error. Re-run after changing a case: `python3 generate.py`.
"""
import base64, json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def header(name, type_code, value=None, raw_name=None):
    name_bytes = raw_name if raw_name is not None else name.encode()
    out = bytes([len(name_bytes) & 0xFF]) + name_bytes + bytes([type_code])
    if type_code in (0, 1):
        pass
    elif type_code == 2:
        out += struct.pack(">b", value)
    elif type_code == 3:
        out += struct.pack(">h", value)
    elif type_code == 4:
        out += struct.pack(">i", value)
    elif type_code in (5, 8):
        out += struct.pack(">q", value)
    elif type_code in (6, 7):
        out += struct.pack(">H", len(value)) + value
    elif type_code == 9:
        out += value
    return out


def frame(headers=b"", payload=b"", total=None, headers_length=None, prelude_crc=None, message_crc=None, crc=zlib.crc32):
    total = total if total is not None else 16 + len(headers) + len(payload)
    headers_length = headers_length if headers_length is not None else len(headers)
    prelude = struct.pack(">II", total & 0xFFFFFFFF, headers_length & 0xFFFFFFFF)
    prelude += struct.pack(">I", prelude_crc if prelude_crc is not None else crc(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", message_crc if message_crc is not None else crc(body))


def describe(raw):
    total, hlen, pcrc = struct.unpack(">III", raw[:12])
    section = raw[12:12 + hlen]
    out, i = [], 0
    while i < len(section):
        n = section[i]; name = section[i + 1:i + 1 + n]; t = section[i + 1 + n]; i += 2 + n
        if t in (0, 1):
            v = t == 0
        elif t == 2:
            v = struct.unpack(">b", section[i:i + 1])[0]; i += 1
        elif t == 3:
            v = struct.unpack(">h", section[i:i + 2])[0]; i += 2
        elif t == 4:
            v = struct.unpack(">i", section[i:i + 4])[0]; i += 4
        elif t in (5, 8):
            v = struct.unpack(">q", section[i:i + 8])[0]; i += 8
        elif t in (6, 7):
            ln = struct.unpack(">H", section[i:i + 2])[0]; v = base64.b64encode(section[i + 2:i + 2 + ln]).decode(); i += 2 + ln
        else:
            v = base64.b64encode(section[i:i + 16]).decode(); i += 16
        out.append({"name": name.decode("latin-1"), "type": t, "value": v})
    mcrc = struct.unpack(">I", raw[total - 4:total])[0]
    signed = lambda x: x - (1 << 32) if x >= 1 << 31 else x
    return {"total_length": total, "headers_length": hlen, "prelude_crc": signed(pcrc), "headers": out,
            "payload": base64.b64encode(raw[12 + hlen:total - 4]).decode(), "message_crc": signed(mcrc)}


def bedrock(event_type, payload, message_type="event", type_header=":event-type"):
    return header(type_header, 7, event_type.encode()) + header(":content-type", 7, b"application/json") \
        + header(":message-type", 7, message_type.encode())


PAD = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
positive, negative = {}, {}

positive["empty_message"] = [frame()]
positive["payload_no_headers"] = [frame(payload=b'{"a":1}')]
positive["all_header_types"] = [frame(
    header("t", 0) + header("f", 1) + header("byte", 2, -128) + header("short", 3, -32768)
    + header("integer", 4, 2147483647) + header("long", 5, -9223372036854775808)
    + header("bytes", 6, bytes(range(256))[:200]) + header("string", 7, "héllo ✓".encode())
    + header("timestamp", 8, -1) + header("uuid", 9, bytes(range(16, 32))),
    b"payload")]
positive["empty_string_and_byte_array"] = [frame(header("s", 7, b"") + header("b", 6, b""), b"x")]
positive["name_255_bytes"] = [frame(header("n" * 255, 7, b"v"))]
positive["string_32767_bytes"] = [frame(header("big", 7, b"z" * 32767))]
delta = b'{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"' + PAD[:42] + b'"}'
positive["bedrock_content_block_delta"] = [frame(bedrock("contentBlockDelta", delta), delta)]
exc = b'{"message":"Too many requests, please wait before trying again."}'
positive["bedrock_throttling_exception"] = [frame(bedrock("throttlingException", exc, "exception", ":exception-type"), exc)]
positive["unmodeled_error"] = [frame(header(":message-type", 7, b"error") + header(":error-code", 7, b"InternalFailure")
                                     + header(":error-message", 7, b"An internal error occurred"))]
chunk = b'{"bytes":"' + base64.b64encode(b'{"type":"message_stop"}') + b'","p":"abc"}'
positive["bedrock_invoke_chunk"] = [frame(bedrock("chunk", chunk), chunk)]
inner = frame(header("x", 7, b"y"), b"inner")
positive["payload_that_looks_like_a_frame"] = [frame(header(":message-type", 7, b"event"), inner)]
positive["three_messages_in_one_read"] = [frame(bedrock("messageStart", b'{"role":"assistant"}'), b'{"role":"assistant"}'),
                                          frame(bedrock("contentBlockDelta", delta), delta),
                                          frame(payload=b"")]

good = frame(header(":content-type", 7, b"application/json"), b'{"a":"b"}')


def flip(raw, offset, bit=0):
    raw = bytearray(raw); raw[offset] ^= 1 << bit; return bytes(raw)


def neg(name, raw, error, at, message_offset=0, before=0):
    negative[name] = (raw, {"error": error, "message_offset": message_offset, "stream_offset": at, "messages_before": before})


neg("prelude_crc_wrong", flip(good, 11), "prelude_checksum", 8)
neg("total_length_bit_flip", flip(good, 3, 1), "prelude_checksum", 8)
neg("crc32c_instead_of_crc32", frame(header("a", 7, b"b"), b"p", crc=crc32c), "prelude_checksum", 8)
neg("message_crc_wrong", flip(good, len(good) - 1), "message_checksum", len(good) - 4)
neg("payload_bit_flip", flip(good, len(good) - 6, 7), "message_checksum", len(good) - 4)
neg("total_length_zero", frame(total=0), "message_too_short", 0)
neg("total_length_15", frame(total=15, headers_length=0)[:12], "message_too_short", 0)
neg("headers_length_over_total", frame(header("a", 7, b"b"), total=16 + 3, headers_length=4), "headers_length_invalid", 4)
neg("headers_length_wraps_u32", frame(total=32, headers_length=0xFFFFFFF0)[:12], "headers_length_invalid", 4)
neg("message_too_large", frame(total=24 * MiB + 1)[:12], "message_too_large", 0)
neg("total_length_4_gib", frame(total=0xFFFFFFFF, headers_length=16)[:12], "message_too_large", 0)
neg("headers_too_large", frame(total=1 * MiB, headers_length=128 * 1024 + 1)[:12], "headers_too_large", 4)
neg("unknown_header_type", frame(header("a", 10)), "header_malformed", 12)
neg("string_runs_past_section", frame(header("a", 7, b"abcd")[:-2], b"cd"), "header_malformed", 12)
neg("name_runs_past_section", frame(bytes([9]) + b"abc"), "header_malformed", 12)
neg("type_missing", frame(bytes([3]) + b"abc"), "header_malformed", 12)
neg("empty_header_name", frame(header("", 0)), "header_malformed", 12)
neg("duplicate_header_name", frame(header("dup", 0) + header("dup", 1)), "header_malformed", 12 + 5)
neg("string_32768_bytes", frame(header("big", 7, b"z" * 32768)), "header_malformed", 12)
neg("uuid_cut_short", frame(header("u", 9, bytes(8))), "header_malformed", 12)
neg("truncated_in_prelude", good[:5], "truncated", 5)
neg("truncated_in_trailer", good[:-1], "truncated", len(good) - 1)
neg("truncated_after_a_message", good + good[:11], "truncated", len(good) + 11, len(good), 1)
neg("second_message_corrupt", good + flip(good, 20), "message_checksum", 2 * len(good) - 4, len(good), 1)

for kind in ("encoded", "decoded"):
    for sub in ("positive", "negative"):
        os.makedirs(os.path.join(HERE, kind, sub), exist_ok=True)
for name, frames in positive.items():
    open(os.path.join(HERE, "encoded", "positive", name), "wb").write(b"".join(frames))
    json.dump([describe(f) for f in frames], open(os.path.join(HERE, "decoded", "positive", name), "w"), indent=1)
for name, (raw, expected) in negative.items():
    open(os.path.join(HERE, "encoded", "negative", name), "wb").write(raw)
    json.dump(expected, open(os.path.join(HERE, "decoded", "negative", name), "w"), indent=1)
print(f"{len(positive)} positive, {len(negative)} negative cases")
