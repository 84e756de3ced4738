"""The scripted OpenAI-compatible chat-completions server of the test suite (the `server` fixture
in conftest.py, or ``FaultServer(...)`` directly), for what a real server will not do on demand:
answer instantly, record every request body, stream given pieces as slowly as told, fail with
HTTP 500 or 429, cut a stream mid-way, end a stream without a finish, or stall past the client's
timeout.

It runs in threads on 127.0.0.1 on a free port, stops itself after ``lifetime`` seconds at the
latest, and never sleeps longer than ``stall_seconds`` in any handler::

    with FaultServer() as server:             # mode "reply": a fast, well-formed stream
        env["OPENAI_BASE_URL"] = server.base   # http://127.0.0.1:PORT/v1
        server.script = ["500", "reply"]       # the next two requests, then ``server.mode``
        ...
        server.requests[-1]["messages"]        # what the client sent
        server.gets                            # GET paths asked (``/v1/models`` lists
                                               # ``server.models``)

Modes (``server.mode`` or the head of ``server.script``):

- ``reply``    stream ``server.reply`` (text, or a function of the request body) in small pieces,
               then a chunk with ``finish_reason: server.finish`` (``stop``; ``length`` for a
               reply cut at max_tokens), a usage chunk and ``[DONE]``; replies report
               ``server.served_model`` if set, else the model asked for;
- ``500``/``429``  an HTTP error with an OpenAI-style JSON error body;
- ``401``      an HTTP 401 whose message quotes the API key the client sent (as OpenAI's does);
- ``cut``      a chunked stream that is aborted mid-chunk (the connection is reset), no finish;
- ``eof``      a few pieces, then the connection closes cleanly: no finish_reason, no [DONE];
- ``nofinish`` a few pieces and ``[DONE]``, but no chunk carries a finish_reason;
- ``stall``    accept the request and send nothing until the client gives up;
- ``stall_mid``  send the headers and one piece, then nothing until the client gives up.

``server.piece_size`` (default 6) is how many characters each streamed piece carries. For a
stream that must arrive in given pieces, set ``server.chunks`` (any iterable of strings, iterated
anew for each request, so it may hold the stream back until a test lets it go); it replaces
``reply``. ``server.delay`` seconds pass between pieces (a slow model), and ``server.cancelled``
is set when a client goes away mid-stream.

``refused_url()`` gives a base URL on a loopback port where nothing listens.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("reply", "500", "429", "401", "cut", "eof", "nofinish", "stall", "stall_mid")


def refused_url() -> str:
    """A loopback base URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def default_reply(body: dict) -> str:
    """``ok: <the last user message>`` — cheap, and shows which request it answers."""
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    last = users[-1] if users else ""
    return f"ok: {last[:60]}"


class FaultServer:
    def __init__(self, mode: str = "reply", reply: str | Callable[[dict], str] = default_reply,
                 lifetime: float = 600.0, stall_seconds: float = 10.0,
                 chunks: Iterable[str] | None = None, delay: float = 0.0):
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.script: list[str] = []
        self.reply = reply
        self.lifetime = lifetime
        self.stall_seconds = stall_seconds
        self.piece_size = 6  # characters per streamed piece; raise it for big, fast replies
        self.chunks = chunks  # the exact pieces of every reply, instead of ``reply``
        self.delay = delay  # seconds between streamed pieces
        self.cancelled = threading.Event()  # a client went away mid-stream
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.gets: list[str] = []  # paths of GET requests (e.g. /v1/models)
        self.models = ["fault"]  # what GET /v1/models lists
        self.served_model: str | None = None  # the model replies report (None: the one asked)
        self.finish = "stop"  # the finish_reason of a `reply` stream ("length": cut)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._serve, name="fault-server", daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FaultServer:
        self._thread.start()
        self._timer.start()
        return self

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the handler asks -----------------------------------------------------------
    def next_mode(self, body: dict) -> str:
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if self.script else self.mode

    def reply_text(self, body: dict) -> str:
        if self.chunks is not None:
            return "".join(self.chunks)
        return self.reply(body) if callable(self.reply) else str(self.reply)

    def wait(self, seconds: float) -> None:
        """Sleep for at most ``seconds`` (bounded by stall_seconds), waking early on stop."""
        self._stop.wait(min(seconds, self.stall_seconds))

    @property
    def last_messages(self) -> list[dict]:
        return self.requests[-1]["messages"]


def _chunk(model: str, delta: dict, finish: str | None = None, usage: dict | None = None,
           choices: bool = True) -> bytes:
    event = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0,
             "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
    if usage is not None:
        event["usage"] = usage
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _pieces(text: str, size: int = 6) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _handler_for(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            server.gets.append(self.path)
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list",
                                 "data": [{"id": m, "object": "model", "owned_by": "t"}
                                          for m in server.models]})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            server.headers.append({k.lower(): v for k, v in self.headers.items()})
            mode = server.next_mode(body)
            model = server.served_model or body.get("model", "fault")
            if mode in ("500", "429", "401"):
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                message = {"500": "the fault server failed on purpose",
                           "429": "slow down: rate limited on purpose",
                           "401": f"Incorrect API key provided: {key}"}[mode]
                self._json(int(mode), {"error": {"message": message, "type": "fault"}},
                           close=True)
                return
            if mode == "stall":
                server.wait(server.stall_seconds)
                self.close_connection = True
                return
            if not body.get("stream"):
                text = server.reply_text(body)
                self._json(200, {
                    "id": "chatcmpl-fault", "object": "chat.completion", "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
                return
            self._stream(mode, model, body)

        def _stream(self, mode: str, model: str, body: dict) -> None:
            chunked = mode != "eof"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def send(data: bytes) -> None:
                if chunked:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    self.wfile.write(data)
                self.wfile.flush()

            pieces: Iterable[str] = (server.chunks if server.chunks is not None
                                     else _pieces(server.reply_text(body), server.piece_size))
            try:
                send(_chunk(model, {"role": "assistant", "content": ""}))
                if mode != "reply":
                    pieces = list(pieces) or [""]
                if mode == "stall_mid":
                    send(_chunk(model, {"content": pieces[0]}))
                    server.wait(server.stall_seconds)
                    return
                if mode in ("cut", "eof", "nofinish"):
                    for piece in pieces[: max(1, len(pieces) // 2)]:
                        send(_chunk(model, {"content": piece}))
                    if mode == "cut":
                        # Promise a chunk of 4096 bytes, send a few, then reset the connection.
                        self.wfile.write(b"1000\r\ndata: {\"id\"")
                        self.wfile.flush()
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                        return
                    if mode == "nofinish":
                        send(b"data: [DONE]\n\n")
                        send(b"")
                    return  # eof: the connection closes with no finish and no [DONE]
                count = 0
                for piece in pieces:
                    if count and server.delay:
                        server.wait(server.delay)
                    send(_chunk(model, {"content": piece}))
                    count += 1
                send(_chunk(model, {}, finish=server.finish))
                usage = {"prompt_tokens": 11, "completion_tokens": count,
                         "total_tokens": 11 + count}
                send(_chunk(model, {}, usage=usage, choices=False))
                send(b"data: [DONE]\n\n")
                send(b"")  # the terminating zero-length chunk
            except OSError:  # the client went away (e.g. after its timeout)
                server.cancelled.set()

        def _json(self, status: int, payload: dict, close: bool = False) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

    return Handler


if __name__ == "__main__":  # a quick manual check: python tests/fault_server.py
    import sys

    with FaultServer(mode=sys.argv[1] if len(sys.argv) > 1 else "reply") as s:
        print(s.base, flush=True)
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 30)
