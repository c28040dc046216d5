#!/usr/bin/env python3
"""fake_openai.py: a tiny OpenAI-compatible streaming server for testing bench/loadgen.

Only the standard library. Serves GET /health, /ready, /v1/models and POST /v1/completions,
/v1/chat/completions (stream true or false) on 127.0.0.1. One "token" per whitespace-separated
prompt word; the output is max_tokens chunks " w0", " w1", ... (ignore_eos is assumed),
`--token-delay-ms` apart, after a prefill delay of `--prefill-ms-per-token` per prompt word not
found in a simulated prefix cache (16-word blocks, like a paged KV cache). With
stream_options.include_usage a final usage chunk follows, then `data: [DONE]`.

  --port N                  0 (default) = a free port; the chosen port is printed as "PORT N"
  --model NAME              served model id (default "fake")
  --api-key KEY             require Authorization: Bearer KEY (401 otherwise)
  --max-concurrent N        more than N requests in flight get 503 (default: no limit)
  --no-usage                never send a usage chunk (loadgen falls back to counting chunks)
  --empty-first-chunk       completions: a first chunk with "text": "" (must not count as TTFT)
  --drop-after N            close the stream after N tokens, without [DONE] (a broken server)
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 16


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.in_flight = 0
        self.blocks = set()  # hashes of word prefixes that end on a block boundary

    def cached_words(self, words):
        """Longest cached block-aligned prefix, in words; then cache all full blocks."""
        n = 0
        with self.lock:
            for end in range(BLOCK, len(words) + 1, BLOCK):
                if hash(tuple(words[:end])) in self.blocks:
                    n = end
                else:
                    break
            for end in range(BLOCK, len(words) + 1, BLOCK):
                self.blocks.add(hash(tuple(words[:end])))
        return n


def make_handler(state):
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else small SSE writes wait for delayed ACKs

        def log_message(self, fmt, *a):  # quiet
            pass

        def send_json(self, code, obj, extra=None):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def error(self, code, msg, typ="invalid_request_error", extra=None):
            self.send_json(code, {"error": {"message": msg, "type": typ, "code": code}}, extra)

        def do_GET(self):
            if self.path in ("/health", "/ready"):
                self.send_json(200, {"status": "ready"})
            elif self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [
                    {"id": args.model, "object": "model", "created": 0, "owned_by": "fake"}]})
            else:
                self.error(404, "no route " + self.path, "not_found_error")

        def chunk(self, data):
            b = data.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.flush()

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            if args.api_key and self.headers.get("Authorization") != "Bearer " + args.api_key:
                return self.error(401, "invalid API key", "authentication_error")
            chat = self.path == "/v1/chat/completions"
            if not chat and self.path != "/v1/completions":
                return self.error(404, "no route " + self.path, "not_found_error")
            try:
                req = json.loads(raw)
            except ValueError:
                return self.error(400, "body is not JSON")
            if req.get("model") != args.model:
                return self.error(404, "model '%s' does not exist" % req.get("model"),
                                  "not_found_error")
            if chat:
                msgs = req.get("messages") or []
                prompt = " ".join(str(m.get("content", "")) for m in msgs)
            else:
                prompt = req.get("prompt")
            if not isinstance(prompt, str):
                return self.error(400, "'prompt' must be a string")
            max_tokens = int(req.get("max_tokens") or 16)
            stream = bool(req.get("stream"))
            usage_on = bool((req.get("stream_options") or {}).get("include_usage"))
            with state.lock:
                if args.max_concurrent and state.in_flight >= args.max_concurrent:
                    busy = True
                else:
                    busy = False
                    state.in_flight += 1
            if busy:
                return self.error(503, "server busy", "server_error", {"Retry-After": "1"})
            try:
                self.generate(chat, req, prompt, max_tokens, stream, usage_on)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def generate(self, chat, req, prompt, max_tokens, stream, usage_on):
            words = prompt.split()
            n_prompt = len(words) + (4 if chat else 0)
            uncached = len(words) - state.cached_words(words)
            time.sleep(uncached * args.prefill_ms_per_token / 1000.0)
            obj = "chat.completion.chunk" if chat else "text_completion"
            base = {"id": "cmpl-fake", "object": obj, "created": int(time.time()),
                    "model": args.model}
            usage = {"prompt_tokens": n_prompt, "completion_tokens": max_tokens,
                     "total_tokens": n_prompt + max_tokens}
            texts = [" w%d" % i for i in range(max_tokens)]
            if not stream:
                text = "".join(texts)
                choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                           "finish_reason": "length"} if chat else
                          {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"})
                o = dict(base, object="chat.completion" if chat else "text_completion",
                         choices=[choice], usage=usage)
                return self.send_json(200, o)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            extra = {"usage": None} if usage_on else {}

            def send(o):
                self.chunk("data: " + json.dumps(o) + "\n\n")

            if chat:
                send(dict(base, choices=[{"index": 0, "delta": {"role": "assistant"},
                                          "finish_reason": None}], **extra))
            elif args.empty_first_chunk:
                send(dict(base, choices=[{"index": 0, "text": "", "logprobs": None,
                                          "finish_reason": None}], **extra))
            for i, t in enumerate(texts):
                if i:
                    time.sleep(args.token_delay_ms / 1000.0)
                if args.drop_after and i >= args.drop_after:
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                fin = "length" if i == max_tokens - 1 else None
                if chat:
                    ch = {"index": 0, "delta": {"content": t}, "finish_reason": fin}
                else:
                    ch = {"index": 0, "text": t, "logprobs": None, "finish_reason": fin}
                send(dict(base, choices=[ch], **extra))
            if usage_on and not args.no_usage:
                send(dict(base, choices=[], usage=usage))
            self.chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs of bursts of connections


def main():
    ap = argparse.ArgumentParser(description="fake OpenAI-compatible streaming server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="fake")
    ap.add_argument("--api-key")
    ap.add_argument("--token-delay-ms", type=float, default=2.0)
    ap.add_argument("--prefill-ms-per-token", type=float, default=0.05)
    ap.add_argument("--max-concurrent", type=int, default=0)
    ap.add_argument("--no-usage", action="store_true")
    ap.add_argument("--empty-first-chunk", action="store_true")
    ap.add_argument("--drop-after", type=int, default=0)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), make_handler(State(args)))
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
