#!/usr/bin/env python3
"""e2e_util.py: helpers for the cinder e2e shell tests (stdlib only).

  sse-check FILE chat|completion [--usage]   check a saved SSE body's shape; print a summary JSON
  disconnect URL PATH JSON                   start a stream, read one event, drop the connection
  disconnect-full URL PATH JSON              send a non-streamed request, leave after 0.3 s
  drain URL PATH JSON PID [--expect-error]   start a stream, SIGTERM PID after the first event,
                                             read to the end; print the summary JSON
  notify-listen SOCKET OUTFILE SECONDS       a fake systemd NOTIFY_SOCKET: append each datagram
"""
import http.client
import json
import os
import signal
import socket
import sys
import time
import urllib.parse


def die(msg):
    print("e2e_util: " + msg, file=sys.stderr)
    sys.exit(1)


def parse_events(body):
    """SSE body -> list of data payloads; comments are allowed, event: lines are not."""
    if "\r" in body:
        die("CR in the SSE body")
    events = []
    for block in body.split("\n\n"):
        if not block:
            continue
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue  # keep-alive comment
            if line.startswith("event:"):
                die("event: line in the stream: " + line)
            if not line.startswith("data: "):
                die("unexpected SSE line: %r" % line)
            data.append(line[6:])
        if data:
            events.append("\n".join(data))
    if not body.endswith("\n\n"):
        die("the stream does not end with a blank line")
    return events


def check_stream(events, kind, want_usage):
    if not events or events[-1] != "[DONE]":
        die("the last event is not [DONE]: %r" % (events[-1:] if events else None))
    chunks = [json.loads(e) for e in events[:-1]]
    if not chunks:
        die("no chunks")
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    ids = {c["id"] for c in chunks}
    if len(ids) != 1:
        die("chunk ids differ: %s" % ids)
    text, finish, usage, n_finish, logprobs = "", None, None, 0, []
    for i, c in enumerate(chunks):
        if c["object"] != obj:
            die("chunk %d object %r" % (i, c["object"]))
        if "error" in c:
            die("error event: %r" % c)
        if c["choices"] == []:
            if not want_usage or i != len(chunks) - 1:
                die("choices: [] on chunk %d that is not the final usage chunk" % i)
            usage = c["usage"]
            continue
        if want_usage and ("usage" not in c or c["usage"] is not None):
            die("chunk %d lacks \"usage\": null" % i)
        if not want_usage and "usage" in c:
            die("chunk %d has usage without include_usage" % i)
        ch = c["choices"][0]
        if ch["index"] != 0:
            die("choice index %r" % ch["index"])
        if kind == "chat":
            delta = ch["delta"]
            if i == 0 and delta.get("role") != "assistant":
                die("the first chunk's delta has no role: %r" % delta)
            if i > 0 and "role" in delta:
                die("role in a later chunk")
            text += delta.get("content") or ""
            if ch.get("logprobs"):
                logprobs += ch["logprobs"]["content"]
        else:
            text += ch["text"]
            if ch.get("logprobs"):
                logprobs += ch["logprobs"]["tokens"]
        if ch["finish_reason"] is not None:
            n_finish += 1
            finish = ch["finish_reason"]
    if n_finish != 1:
        die("%d chunks carry finish_reason" % n_finish)
    if want_usage and usage is None:
        die("no usage chunk")
    return {"text": text, "finish_reason": finish, "usage": usage, "n_chunks": len(chunks),
            "n_logprobs": len(logprobs)}


def sse_check(path, kind, want_usage):
    with open(path, encoding="utf-8") as f:
        body = f.read()
    print(json.dumps(check_stream(parse_events(body), kind, want_usage)))


def open_stream(url, path, body):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        die("HTTP %d: %s" % (resp.status, resp.read()[:300]))
    if not resp.getheader("Content-Type", "").startswith("text/event-stream"):
        die("content type %r" % resp.getheader("Content-Type"))
    return conn, resp


def read_event(resp):
    """Read up to the end of one SSE event; returns the raw bytes (b'' at EOF)."""
    buf = b""
    while not buf.endswith(b"\n\n"):
        ch = resp.read(1)
        if not ch:
            break
        buf += ch
    return buf


def disconnect(url, path, body):
    conn, resp = open_stream(url, path, body)
    first = read_event(resp)
    if not first.startswith(b"data: "):
        die("first event %r" % first)
    # drop the TCP connection without reading the rest
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    print("disconnected after %d bytes" % len(first))


def disconnect_full(url, path, body):
    """A non-streamed request whose client leaves after 0.3 s."""
    u = urllib.parse.urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    data = body.encode()
    s.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (path, u.hostname, len(data))).encode() + data)
    time.sleep(0.3)
    s.close()
    print("left after 0.3 s")


def drain(url, path, body, pid, expect_error):
    conn, resp = open_stream(url, path, body)
    raw = read_event(resp)
    os.kill(pid, signal.SIGTERM)
    t0 = time.time()
    # new connections are refused once the drain began (the listening socket is closed)
    refused = None
    time.sleep(0.3)
    u = urllib.parse.urlparse(url)
    try:
        socket.create_connection((u.hostname, u.port), timeout=2).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    while True:
        ev = read_event(resp)
        if not ev:
            break
        raw += ev
    conn.close()
    elapsed = time.time() - t0
    events = parse_events(raw.decode("utf-8"))
    if expect_error:
        last = json.loads(events[-1]) if events and events[-1] != "[DONE]" else {}
        if "error" not in last:
            die("expected the stream to end with an error event, got %r" % events[-1:])
        summary = {"error": last["error"]}
    else:
        summary = check_stream(events, "chat" if "chat" in path else "completion", False)
    summary["seconds_after_sigterm"] = round(elapsed, 3)
    summary["refused_during_drain"] = refused
    print(json.dumps(summary))


def notify_listen(path, out, seconds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    end = time.time() + seconds
    with open(out, "a", encoding="utf-8") as f:
        print("listening", file=f, flush=True)
        while time.time() < end:
            try:
                msg = s.recv(4096)
            except socket.timeout:
                continue
            for line in msg.decode("utf-8", "replace").split("\n"):
                print(line, file=f, flush=True)
    s.close()


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "sse-check":
        sse_check(a[0], a[1], "--usage" in a[2:])
    elif cmd == "disconnect":
        disconnect(a[0], a[1], a[2])
    elif cmd == "disconnect-full":
        disconnect_full(a[0], a[1], a[2])
    elif cmd == "drain":
        drain(a[0], a[1], a[2], int(a[3]), "--expect-error" in a[4:])
    elif cmd == "notify-listen":
        notify_listen(a[0], a[1], float(a[2]))
    else:
        die(__doc__)


if __name__ == "__main__":
    main()
