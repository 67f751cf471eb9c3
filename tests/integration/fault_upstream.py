#!/usr/bin/env python3
"""A deliberately faulty upstream for gateway fault tests that tlab-sim cannot stage.

Usage: fault_upstream.py PORT MODE
  stale   answers the first request on each connection (keep-alive), then closes the connection
          without answering the next one: the gateway must retry on a fresh connection.
  dropfirst  closes the very first request's fresh connection without answering, then serves
          normally: only the gateway's own retry (not libcurl's reuse retry) can save it.
  hang    accepts connections and reads requests but never answers.
  status  answers every request with 418 and an OpenAI error body (pass-through check).
  midevent  answers 200 text/event-stream with one whole event and half of the next, in separate
          writes, then closes (no terminating chunk): a stream that breaks mid-event.
  splitcut  a POST gets a chat stream whose every event arrives in two reads (two chunks 50 ms
          apart), role chunk and three words, then the connection closes: a stream cut midway
          whose events were split (gateway_pool.py: it must still go on at another worker).
          Other requests (health polls) get 200.
  mix     the request body's "fault" field picks the behaviour per request (gateway_chaos.py):
          ok, hang (never answers), hangmid (headers and one event or half a body, then silence),
          badjson (200 JSON content type, body not JSON), wrongctype (200 text/html), truncchunk
          (chunked body cut before its last chunk), garbagesse (SSE with junk lines, then [DONE]),
          random (random bytes instead of HTTP), resetmid (a stream reset by RST after two
          events), empty (connection closed without a byte).
Prints "ready" once listening. Standard library only; binds 127.0.0.1.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

port, mode = int(sys.argv[1]), sys.argv[2]
stats = {"connections": 0, "requests": 0, "dropped": 0}


def read_request(conn, buf):
    """Returns (head, body, rest of buf): (None, ...) once the client closes."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, None, buf
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, None, rest
        rest += data
    return head, rest[:length], rest[length:]


def reply(conn, status, body):
    data = json.dumps(body).encode()
    conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(data)) + data)


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENT = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'


def mixed(conn, body):
    """One request of mode mix. Returns False when the connection must close."""
    try:
        fault = json.loads(body or b"{}").get("fault", "ok")
    except ValueError:
        fault = "ok"
    stream = b'"stream": true' in body or b'"stream":true' in body
    if fault == "hang":
        threading.Event().wait()
    if fault == "empty":
        return False
    if fault == "random":
        conn.sendall(os.urandom(512))
        return False
    if fault == "badjson":
        data = b'{"id": "x", "choices": [{"message": {"content": "trunc'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        return True
    if fault == "wrongctype":
        data = b"<html><body>502 Bad Gateway (nginx)</body></html>"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        return True
    if fault == "truncchunk":
        if stream:
            conn.sendall(SSE_HEAD + chunk(EVENT) + chunk(EVENT))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk(b'{"id": "x", "choices": ['))
        return False
    if fault == "garbagesse":
        junk = b"\x00\xff garbage line\n:comment\nevent: ???\ndata: {not json\n\n" + EVENT + b"data: [DONE]\n\n"
        conn.sendall(SSE_HEAD + chunk(junk) + chunk(b""))
        return True
    if fault == "resetmid":
        conn.sendall(SSE_HEAD + chunk(EVENT) + chunk(EVENT))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if fault == "hangmid":
        if stream:
            conn.sendall(SSE_HEAD + chunk(EVENT))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"")
        threading.Event().wait()
    if stream:
        conn.sendall(SSE_HEAD + chunk(EVENT + b"data: [DONE]\n\n") + chunk(b""))
    else:
        reply(conn, 200, {"id": "x", "object": "chat.completion",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
    return True


def serve(conn):
    stats["connections"] += 1
    buf = b""
    served = 0
    try:
        while True:
            head, body, buf = read_request(conn, buf)
            if head is None:
                return
            stats["requests"] += 1
            if mode == "mix":
                if not mixed(conn, body):
                    return
                continue
            if mode == "hang":
                threading.Event().wait()
            if mode == "dropfirst" and stats["dropped"] == 0:
                stats["dropped"] = 1
                return
            if mode == "stale" and served >= 1:
                return  # close without an answer, as a worker's idle close races a reused connection
            if mode == "midevent":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for piece in (b'data: {"choices": [{"index": 0, "delta": {"content": "one"}}]}\n\n',
                              b'data: {"choices": [{"index": 0, "del'):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                    time.sleep(0.1)
                return
            if mode == "splitcut" and head.startswith(b"POST"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                deltas = [{"role": "assistant", "content": ""}] + [{"content": w} for w in ("One", " two", " three")]
                for d in deltas:
                    ev = b"data: " + json.dumps({"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1,
                                                 "model": "m", "choices": [{"index": 0, "delta": d,
                                                                            "finish_reason": None}]}).encode() + b"\n\n"
                    for piece in (ev[:len(ev) // 2], ev[len(ev) // 2:]):
                        conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                        time.sleep(0.05)
                return
            if mode == "status":
                reply(conn, 418, {"object": "error", "message": "I am a teapot", "type": "BadRequestError", "code": 418})
            else:
                reply(conn, 200, {"id": "x", "object": "chat.completion", "connection": stats["connections"],
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                               "finish_reason": "stop"}]})
            served += 1
    finally:
        conn.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
