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
Prints "ready" once listening. Standard library only; binds 127.0.0.1.
"""
import json
import socket
import sys
import threading
import time

port, mode = int(sys.argv[1]), sys.argv[2]
stats = {"connections": 0, "requests": 0, "dropped": 0}


def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
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
            return None, rest
        rest += data
    return head, rest[length:]


def reply(conn, status, body):
    data = json.dumps(body).encode()
    conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(data)) + data)


def serve(conn):
    stats["connections"] += 1
    buf = b""
    served = 0
    try:
        while True:
            head, buf = read_request(conn, buf)
            if head is None:
                return
            stats["requests"] += 1
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
