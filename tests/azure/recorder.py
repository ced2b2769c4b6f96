"""A tiny recording upstream for client tests: real HTTP on 127.0.0.1, records what it receives.

It answers chat/completions and completions (streamed or not) with Azure-shaped bodies, and
serves the App Service managed-identity protocol at ``/msi/token`` for the Entra tests. The full
Azure simulator (apps/simulator) covers errors and stream faults; this only checks URLs,
headers and bodies.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

IDENTITY_HEADER = "recorder-identity-header"
FILTER = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"}}
ERRORS = {
    "[rec:429]": (429, {"code": "429", "message": "Requests exceeded token rate limit. Please retry after 7 seconds."}),
    "[rec:filter]": (400, {"code": "content_filter", "param": "prompt", "status": 400, "message": "filtered",
                           "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": FILTER}}),
    "[rec:ctx]": (400, {"code": "context_length_exceeded", "message": "too long"}),
    "[rec:401]": (401, {"code": "401", "message": "Access denied due to invalid subscription key"}),
    "[rec:404]": (404, {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}),
    "[rec:500]": (500, {"type": "server_error", "code": None, "message": "boom"}),
}


class Recorder:
    def __init__(self):
        self.requests = []
        self.disconnects = 0
        self.token = "entra-token-" + str(int(time.time()))
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path == "/msi/token":
                    ok = self.headers.get("X-IDENTITY-HEADER") == IDENTITY_HEADER
                    recorder.requests.append({"method": "GET", "path": parts.path, "query": parse_qs(parts.query), "headers": dict(self.headers)})
                    body = {
                        "access_token": recorder.token,
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": parse_qs(parts.query).get("resource", [""])[0],
                        "token_type": "Bearer",
                    }
                    return self._json(200 if ok else 401, body if ok else {"error": "bad header"})
                return self._json(404, {"error": {"code": "404", "message": "Resource not found"}})

            def do_POST(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                recorder.requests.append(
                    {"method": "POST", "path": parts.path, "query": parse_qs(parts.query),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
                )
                completions = parts.path.endswith("/completions") and not parts.path.endswith("chat/completions")
                last = str((body.get("messages") or [{}])[-1].get("content", ""))
                errors = dict(ERRORS)
                errors["[rec:echo_key]"] = (400, {"code": "invalid_header", "message": f"gateway: bad api-key {self.headers.get('api-key')}"})
                errors["[rec:echo_path]"] = (400, {"code": "invalid_path", "message": f"gateway: no route {self.path}"})
                for marker, (status, error) in errors.items():
                    if marker in last:
                        self.send_response(status)
                        data = json.dumps({"error": error}).encode()
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.send_header("x-should-retry", "false")  # keep tests fast
                        if status == 429:
                            self.send_header("retry-after", "7")
                        self.end_headers()
                        self.wfile.write(data)
                        return None
                if "[rec:stall]" in last:
                    return self._stall()
                if body.get("stream"):
                    return self._stream(completions, body)
                if completions:
                    return self._json(200, {"id": "c", "object": "text_completion", "created": 1, "model": "m",
                                            "choices": [{"index": 0, "text": "hello", "finish_reason": "stop"}]})
                return self._json(200, {
                    "id": "c", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                })

            def _stall(self):
                """One content chunk, then silence until the client goes away (recorded)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                         "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                self.connection.settimeout(30)
                try:
                    while self.connection.recv(1):
                        pass
                except OSError:
                    pass
                recorder.disconnects += 1
                self.close_connection = True

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, completions, body):
                if completions:
                    chunks = [{"object": "text_completion", "choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in ("hel", "lo")]
                    chunks.append({"object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
                else:
                    chunks = [{"choices": [], "id": "", "model": "", "object": "", "created": 0, "prompt_filter_results": []}]
                    for text in ("hel", "lo"):
                        chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                       "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
                    chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    if body.get("stream_options", {}).get("include_usage"):
                        chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
                data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def reset(self):
        self.requests.clear()

    def posts(self):
        return [r for r in self.requests if r["method"] == "POST"]
