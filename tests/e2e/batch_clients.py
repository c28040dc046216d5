#!/usr/bin/env python3
"""batch_clients.py: concurrent clients for tests/test_e2e_batching.sh (stdlib only).

Every command prints one summary JSON line on stdout and exits 1 (with the reason on stderr)
when its check fails.

  alone URL N MAX_TOKENS OUT.json       N distinct greedy streams one at a time; save the texts
  together URL N MAX_TOKENS ALONE.json [MIN_PREEMPTIONS]
                                        the same N streams all at once: each text == its
                                        single-stream text; they ran side by side (peak
                                        num_requests_running >= 2) and preempted as asked
  flood URL TOTAL CLIENTS               TOTAL requests from CLIENTS threads: each one is a 200
                                        with a complete body or a clean 503 (Retry-After,
                                        OpenAI error JSON); no resets, no timeouts
  disconnects URL N CLIENTS             N streams dropped abruptly after their first event(s)
  wait-idle URL SECONDS KV_WANT         poll /metrics until running == waiting == 0 and
                                        kv_cache_usage_perc == KV_WANT
  metric URL NAME                       print a series' value (label set ignored, summed)
  prefix URL N_PREFIXES N_WARM WORDS    shared-prefix workload: cold vs warm time to first token
"""
import http.client
import json
import random
import socket
import statistics
import struct
import sys
import threading
import time
import urllib.parse

TIMEOUT = 120  # seconds for one request; sanitizer builds on a loaded machine are slow


def die(msg):
    print("batch_clients: " + msg, file=sys.stderr)
    sys.exit(1)


def hostport(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port


def connect(url):
    h, p = hostport(url)
    return http.client.HTTPConnection(h, p, timeout=TIMEOUT)


def get(url, path):
    conn = connect(url)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def metrics(url, label=""):
    """/metrics -> {name: value}, the values of the series of one name that carry `label`
    (e.g. 'status="503"') summed."""
    st, body = get(url, "/metrics")
    if st != 200:
        die("/metrics: HTTP %d" % st)
    out = {}
    for line in body.split("\n"):
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        if label and label not in name_labels:
            continue
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def read_sse(resp, on_event=None):
    """Read an SSE body to its end; returns the data payloads. on_event(payload) may return
    True to stop reading early."""
    events, data = [], []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode("utf-8")
        if line.endswith("\n"):
            line = line[:-1]
        if line == "":
            if data:
                ev = "\n".join(data)
                events.append(ev)
                data = []
                if on_event and on_event(ev):
                    return events
            continue
        if line.startswith(":"):
            continue
        if not line.startswith("data: "):
            raise ValueError("unexpected SSE line %r" % line)
        data.append(line[6:])
    return events


def stream_summary(events, kind):
    """Check a complete stream; returns (text, finish_reason)."""
    if not events or events[-1] != "[DONE]":
        raise ValueError("the stream does not end with [DONE]: %r" % events[-2:])
    text, finish, n_finish = "", None, 0
    for ev in events[:-1]:
        c = json.loads(ev)
        if "error" in c:
            raise ValueError("error event %r" % c)
        if not c.get("choices"):
            continue
        ch = c["choices"][0]
        if kind == "chat":
            text += ch["delta"].get("content") or ""
        else:
            text += ch["text"]
        if ch.get("finish_reason") is not None:
            n_finish += 1
            finish = ch["finish_reason"]
    if n_finish != 1:
        raise ValueError("%d chunks carry finish_reason" % n_finish)
    return text, finish


def post(url, path, body, stream):
    """One request; returns (status, headers dict (lower-case), text, finish, raw_error_body)."""
    conn = connect(url)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        hdr = {k.lower(): v for k, v in r.getheaders()}
        kind = "chat" if "chat" in path else "completion"
        if r.status != 200:
            return r.status, hdr, None, None, r.read()
        if stream:
            if not hdr.get("content-type", "").startswith("text/event-stream"):
                raise ValueError("stream content type %r" % hdr.get("content-type"))
            text, finish = stream_summary(read_sse(r), kind)
        else:
            d = json.loads(r.read())
            ch = d["choices"][0]
            text = ch["message"]["content"] if kind == "chat" else ch["text"]
            finish = ch["finish_reason"]
            u = d["usage"]
            if u["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"]:
                raise ValueError("usage does not add up: %r" % u)
        return 200, hdr, text, finish, None
    finally:
        conn.close()


def run_threads(n, fn):
    """Run fn(i) on n threads released together; returns the list of results (or exceptions)."""
    res = [None] * n
    barrier = threading.Barrier(n)

    def work(i):
        try:
            barrier.wait(timeout=60)
            res[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            res[i] = e

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return res


# ---- 1. batch invariance ----

WORDS = ("the little girl saw a big red ball in the park and she wanted to play with it "
         "but her mom said no because it was time to go home for dinner so they walked "
         "along the river where a happy dog ran after a small bird that flew over the tall "
         "green trees near an old house with a blue door and a garden full of flowers").split()


def invariance_requests(n, max_tokens):
    reqs = []
    for i in range(n):
        rnd = random.Random(1000 + i)
        # prompts of different lengths (a few words to ~150 tokens, every 8th ~450 tokens, over
        # one step's token budget), so prefill chunks and decodes share the steps
        n_words = 220 if i % 8 == 5 else 2 + (i * 7) % 60
        words = " ".join(rnd.choice(WORDS) for _ in range(n_words))
        if i % 4 == 3:
            path = "/v1/chat/completions"
            body = {"messages": [{"role": "user", "content": "Story %d: %s" % (i, words)}]}
        else:
            path = "/v1/completions"
            body = {"prompt": "Once upon a time %d %s" % (i, words)}
        body.update({"temperature": 0, "max_tokens": max_tokens, "stream": True})
        reqs.append((path, body))
    return reqs


def alone_texts(url, n, max_tokens, out_path):
    """The N greedy streams one at a time; their (text, finish_reason) saved to out_path."""
    reqs = invariance_requests(n, max_tokens)
    t0 = time.time()
    alone = []
    for path, body in reqs:
        st, _, text, finish, err = post(url, path, body, True)
        if st != 200:
            die("single stream: HTTP %d %r" % (st, err))
        alone.append((text, finish))
    if len(set(a[0] for a in alone)) < n // 2:
        die("the prompts gave too few distinct answers: %r" % alone)
    with open(out_path, "w") as f:
        json.dump(alone, f)
    print(json.dumps({"streams": n, "t_alone_s": round(time.time() - t0, 2)}))


def together_round(url, reqs, alone):
    """All the streams at once; returns the summary or dies on a difference."""
    n = len(reqs)
    # watch /metrics meanwhile: the streams must really have run side by side
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], metrics(url).get("vllm:num_requests_running", 0))
            except BaseException:  # noqa: BLE001 - only a diagnostic
                pass
            time.sleep(0.002)

    pre0 = metrics(url).get("vllm:num_preemptions_total", 0)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    t0 = time.time()
    res = run_threads(n, lambda i: post(url, reqs[i][0], reqs[i][1], True))
    t_together = time.time() - t0
    stop.set()
    w.join()
    preempted = metrics(url).get("vllm:num_preemptions_total", 0) - pre0
    bad = []
    for i, r in enumerate(res):
        if isinstance(r, BaseException):
            bad.append("stream %d: %r" % (i, r))
        elif r[0] != 200:
            bad.append("stream %d: HTTP %d %r" % (i, r[0], r[4]))
        elif (r[2], r[3]) != alone[i]:
            bad.append("stream %d differs:\n  alone:    %r (%s)\n  together: %r (%s)"
                       % (i, alone[i][0], alone[i][1], r[2], r[3]))
    if bad:
        die("%d of %d concurrent streams differ or failed (%d preemptions):\n"
            % (len(bad), n, preempted) + "\n".join(bad))
    summary = {"streams": n, "identical": n, "peak_running": int(peak[0]),
               "preemptions": int(preempted), "t_together_s": round(t_together, 2)}
    if peak[0] < 2:
        die("the streams never ran together: %s" % json.dumps(summary))
    return summary


def together(url, n, max_tokens, alone_path, min_preempt):
    """The same N streams all at once: each must equal its single-stream text. With
    min_preempt, up to 3 rounds until one has preempted that often (each round is checked)."""
    reqs = invariance_requests(n, max_tokens)
    with open(alone_path) as f:
        alone = [tuple(a) for a in json.load(f)]
    for rnd in range(3):
        summary = together_round(url, reqs, alone)
        summary["round"] = rnd + 1
        if summary["preemptions"] >= min_preempt:
            print(json.dumps(summary))
            return
    die("fewer preemptions than %d in 3 rounds: %s" % (min_preempt, json.dumps(summary)))


# ---- 2. overload ----

def flood(url, total, clients):
    lock = threading.Lock()
    counter = [0]
    stats = {"ok": 0, "503": 0, "bad": []}

    def next_index():
        with lock:
            if counter[0] >= total:
                return None
            counter[0] += 1
            return counter[0] - 1

    def one(i):
        stream = i % 2 == 0
        if i % 3 == 0:
            path = "/v1/chat/completions"
            body = {"messages": [{"role": "user", "content": "Tell story %d" % i}]}
        else:
            path = "/v1/completions"
            body = {"prompt": "Once upon a time %d" % i}
        body.update({"max_tokens": 48, "temperature": 0.8, "seed": i, "stream": stream})
        try:
            st, hdr, text, finish, err = post(url, path, body, stream)
        except BaseException as e:  # noqa: BLE001
            return "request %d (%s): %r" % (i, "stream" if stream else "full", e)
        if st == 200:
            if finish not in ("stop", "length") or text is None:
                return "request %d: 200 with finish_reason %r" % (i, finish)
            return "ok"
        if st != 503:
            return "request %d: HTTP %d %r" % (i, st, err[:300])
        ra = hdr.get("retry-after", "")
        if not ra.isdigit() or int(ra) < 1:
            return "request %d: 503 with Retry-After %r" % (i, ra)
        try:
            e = json.loads(err)["error"]
            assert isinstance(e["message"], str) and e["message"]
            assert e["type"] == "service_unavailable_error", e
            assert e["code"] == "server_overloaded", e
            assert "param" in e and "code" in e, e
        except (ValueError, KeyError, TypeError, AssertionError) as ex:
            return "request %d: 503 body is not an OpenAI error (%r): %r" % (i, ex, err[:300])
        if not hdr.get("content-type", "").startswith("application/json"):
            return "request %d: 503 content type %r" % (i, hdr.get("content-type"))
        return "503"

    def client(c):
        rnd = random.Random(c)
        while True:
            i = next_index()
            if i is None:
                return
            r = one(i)
            with lock:
                if r == "ok":
                    stats["ok"] += 1
                elif r == "503":
                    stats["503"] += 1
                else:
                    stats["bad"].append(r)
            if r == "503":
                # back off a little (less than Retry-After, to keep the pressure on)
                time.sleep(rnd.uniform(0.02, 0.2))

    n503_0 = metrics(url, 'status="503"').get("cinder_http_requests_total", 0)
    t0 = time.time()
    res = run_threads(clients, client)
    for r in res:
        if isinstance(r, BaseException):
            stats["bad"].append("client thread: %r" % r)
    t_s = time.time() - t0
    n503 = metrics(url, 'status="503"').get("cinder_http_requests_total", 0) - n503_0
    summary = {"requests": total, "clients": clients, "ok": stats["ok"], "503": stats["503"],
               "bad": len(stats["bad"]), "metrics_503": int(n503), "t_s": round(t_s, 2)}
    if stats["bad"]:
        die("%s\n" % json.dumps(summary) + "\n".join(stats["bad"][:20]))
    if stats["ok"] + stats["503"] != total:
        die("lost requests: %s" % json.dumps(summary))
    if stats["ok"] == 0:
        die("nothing succeeded: %s" % json.dumps(summary))
    if stats["503"] == 0:
        die("no 503 although the queue must have overflowed: %s" % json.dumps(summary))
    if n503 != stats["503"]:
        die("/metrics counts another number of 503s: %s" % json.dumps(summary))
    print(json.dumps(summary))


# ---- 3. disconnects ----

def disconnects(url, n, clients):
    lock = threading.Lock()
    counter = [0]
    stats = {"rst": 0, "fin": 0, "events_read": 0, "bad": []}

    def one(i):
        path = "/v1/chat/completions" if i % 5 == 4 else "/v1/completions"
        body = {"max_tokens": 1500, "ignore_eos": True, "stream": True, "temperature": 0.7,
                "seed": i}
        if path == "/v1/completions":
            body["prompt"] = "Once upon a time %d" % i
        else:
            body["messages"] = [{"role": "user", "content": "Story %d" % i}]
        conn = connect(url)
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raise ValueError("HTTP %d %r" % (r.status, r.read()[:300]))
        want = 1 + i % 3  # read the first one to three events
        got = []
        read_sse(r, lambda ev: got.append(ev) or len(got) >= want)
        if len(got) < want or "[DONE]" in got:
            raise ValueError("the stream ended early: %r" % got)
        sock = conn.sock
        if i % 2 == 0:
            # abortive close: RST, as when a client process dies
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            how = "rst"
        else:
            sock.shutdown(socket.SHUT_RDWR)
            how = "fin"
        sock.close()
        conn.close()
        return how, len(got)

    def client(_):
        while True:
            with lock:
                if counter[0] >= n:
                    return
                i = counter[0]
                counter[0] += 1
            try:
                how, k = one(i)
                with lock:
                    stats[how] += 1
                    stats["events_read"] += k
            except BaseException as e:  # noqa: BLE001
                with lock:
                    stats["bad"].append("disconnect %d: %r" % (i, e))

    t0 = time.time()
    run_threads(clients, client)
    summary = {"disconnects": n, "clients": clients, "rst": stats["rst"], "fin": stats["fin"],
               "events_read": stats["events_read"], "bad": len(stats["bad"]),
               "t_s": round(time.time() - t0, 2)}
    if stats["bad"]:
        die("%s\n" % json.dumps(summary) + "\n".join(stats["bad"][:20]))
    print(json.dumps(summary))


def wait_idle(url, seconds, kv_want):
    deadline = time.time() + seconds
    while True:
        m = metrics(url)
        cur = {k: m.get("vllm:" + k) for k in
               ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc")}
        if (cur["num_requests_running"] == 0 and cur["num_requests_waiting"] == 0
                and cur["kv_cache_usage_perc"] == kv_want):
            print(json.dumps(cur))
            return
        if time.time() > deadline:
            die("not idle after %g s: %s (kv wanted %r)" % (seconds, json.dumps(cur), kv_want))
        time.sleep(0.1)


# ---- 4. prefix cache ----

def ttft_request(url, prompt, max_tokens=4):
    """Streamed completion; returns (seconds to the first generated text, full text)."""
    body = {"prompt": prompt, "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "ignore_eos": True}
    conn = connect(url)
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raise ValueError("HTTP %d %r" % (r.status, r.read()[:300]))
        first = [None]

        def on_event(ev):
            if first[0] is None and ev != "[DONE]":
                c = json.loads(ev)
                if c.get("choices") and (c["choices"][0]["text"]
                                         or c["choices"][0]["finish_reason"]):
                    first[0] = time.perf_counter() - t0
            return False

        events = read_sse(r, on_event)
        text, _ = stream_summary(events, "completion")
        if first[0] is None:
            raise ValueError("no token in the stream")
        return first[0], text
    finally:
        conn.close()


def make_prefix(k, n_words):
    rnd = random.Random(77 + k)
    return "Prefix %d. " % k + " ".join(rnd.choice(WORDS) for _ in range(n_words))


def prefix(url, n_prefixes, n_warm, n_words):
    m0 = metrics(url)
    # prompt length in tokens, for the report
    conn = connect(url)
    conn.request("POST", "/tokenize", body=json.dumps({"prompt": make_prefix(0, n_words)}),
                 headers={"Content-Type": "application/json"})
    n_prefix_tokens = json.loads(conn.getresponse().read())["count"]
    conn.close()

    cold, warm = [], []
    for k in range(n_prefixes):
        p = make_prefix(k, n_words)
        t, _ = ttft_request(url, p + " Then number %d came." % 0)
        cold.append(t)
        for j in range(1, n_warm + 1):
            t, _ = ttft_request(url, p + " Then number %d came." % j)
            warm.append(t)
    m1 = metrics(url)

    # a warm non-streamed request reports the cached tokens
    p = make_prefix(0, n_words)
    conn = connect(url)
    conn.request("POST", "/v1/completions",
                 body=json.dumps({"prompt": p + " At last the end.", "temperature": 0,
                                  "max_tokens": 4}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    d = json.loads(r.read())
    conn.close()
    if r.status != 200:
        die("warm non-streamed request: HTTP %d %r" % (r.status, d))
    cached = d["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)

    hits = m1.get("vllm:prefix_cache_hits_total", 0) - m0.get("vllm:prefix_cache_hits_total", 0)
    queries = (m1.get("vllm:prefix_cache_queries_total", 0)
               - m0.get("vllm:prefix_cache_queries_total", 0))
    summary = {"prefix_tokens": n_prefix_tokens, "prompt_tokens": d["usage"]["prompt_tokens"],
               "cached_tokens": cached, "prefix_cache_queries": queries,
               "prefix_cache_hits": hits,
               "ttft_cold_ms": [round(x * 1000, 2) for x in cold],
               "ttft_cold_median_ms": round(statistics.median(cold) * 1000, 2),
               "ttft_warm_median_ms": round(statistics.median(warm) * 1000, 2),
               "ttft_warm_min_ms": round(min(warm) * 1000, 2),
               "ttft_warm_max_ms": round(max(warm) * 1000, 2)}
    print(json.dumps(summary))
    if hits <= 0:
        die("no prefix cache hits: %s" % json.dumps(summary))
    if hits > queries:
        die("more prefix hits than queries: %s" % json.dumps(summary))
    # every warm request shares the whole prefix but for its last, partly filled block
    if cached <= 0 or cached >= d["usage"]["prompt_tokens"] or cached < n_prefix_tokens - 64:
        die("cached_tokens %r of %r prompt tokens (prefix %d)"
            % (cached, d["usage"]["prompt_tokens"], n_prefix_tokens))
    if statistics.median(warm) >= statistics.median(cold):
        die("warm TTFT is not lower than cold: %s" % json.dumps(summary))


def main():
    if len(sys.argv) < 3:
        die(__doc__)
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "alone":
        alone_texts(a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "together":
        together(a[0], int(a[1]), int(a[2]), a[3], int(a[4]) if len(a) > 4 else 0)
    elif cmd == "flood":
        flood(a[0], int(a[1]), int(a[2]))
    elif cmd == "disconnects":
        disconnects(a[0], int(a[1]), int(a[2]))
    elif cmd == "wait-idle":
        wait_idle(a[0], float(a[1]), float(a[2]))
    elif cmd == "metric":
        v = metrics(a[0]).get(a[1])
        if v is None:
            die("no series %s" % a[1])
        print("%.15g" % v)
    elif cmd == "prefix":
        prefix(a[0], int(a[1]), int(a[2]), int(a[3]))
    else:
        die("unknown command " + cmd)


if __name__ == "__main__":
    main()
