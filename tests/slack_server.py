"""A local Slack Web API endpoint for the tests: records every request, keeps channel history with
message metadata (paged like Slack's), and can answer 429 with Retry-After, 500, `ok: false`, drop
the connection, or accept a post and then drop the connection (`accept-drop`)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from monitor.outbox.dispatcher import Dispatcher, Outcome, Route
from monitor.outbox.sinks.slack import SlackSink


@dataclass
class FakeSlack:
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # next answers to chat.postMessage: pass (as usual), 429:N, 500, error:X, drop, accept-drop
    script: deque[str] = field(default_factory=deque)
    on_post: Callable[[dict[str, Any]], None] | None = None
    channels: dict[str, str] = field(default_factory=dict)  # id -> name, for conversations.info
    _ts: int = field(default_factory=lambda: int(time.time() * 1_000_000))  # message ts: Slack's clock

    def posts(self, thread: bool | None = None) -> list[dict[str, Any]]:
        found = [b for m, b in self.requests if m == "chat.postMessage"]
        return found if thread is None else [b for b in found if bool(b.get("thread_ts")) == thread]

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        self.requests.append((method, body))
        if method == "webhook":  # an incoming webhook: answers plain "ok", scripted failures as status codes
            action = self.script.popleft() if self.script else "ok"
            return (int(action), {}, {"error": action}) if action.isdigit() else (200, {}, None)
        action = self.script.popleft() if method == "chat.postMessage" and self.script else "pass"
        if action != "pass":
            if action == "drop":
                return 0, {}, None
            if action == "accept-drop":  # Slack posted it, but the answer never arrives
                self._post(body)
                return 0, {}, None
            if action.startswith("429"):
                return 429, {"Retry-After": action.partition(":")[2] or "1"}, {"ok": False, "error": "ratelimited"}
            if action == "500":
                return 500, {}, {"ok": False, "error": "internal_error"}
            return 200, {}, {"ok": False, "error": action.partition(":")[2]}
        if method == "chat.postMessage":
            message = self._post(body)
            if self.on_post:
                self.on_post(body)
            return 200, {}, {"ok": True, "channel": body["channel"], "ts": message["ts"], "message": message}
        if method == "chat.update":
            return 200, {}, {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        if method == "conversations.history":  # like Slack: top-level messages only, newest first
            oldest = float(body.get("oldest", 0))
            messages = [
                m for m in self.history.get(body["channel"], []) if float(m["ts"]) >= oldest and not m["thread_ts"]
            ]
            return 200, {}, _page(list(reversed(messages)), body)
        if method == "conversations.replies":
            thread = [m for m in self.history.get(body["channel"], []) if body["ts"] in (m["ts"], m["thread_ts"])]
            return 200, {}, _page(thread, body)
        if method == "auth.test":
            return 200, {}, {"ok": True, "user": "trailguard", "team": "Acme", "user_id": "U0BOT"}
        if method == "conversations.info":
            name = self.channels.get(body.get("channel", ""))
            if name is None:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            return 200, {}, {"ok": True, "channel": {"id": body["channel"], "name": name, "is_member": True}}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        self._ts += 1
        ts = f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"
        message = {
            "ts": ts,
            "text": body.get("text"),
            "metadata": body.get("metadata"),
            "thread_ts": body.get("thread_ts"),
        }
        self.history.setdefault(body["channel"], []).append(message)
        return message


def _page(messages: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """One page of `limit` messages (Slack's default: 100) from the `cursor`, and the cursor of the next."""
    start, limit = int(body.get("cursor") or 0), int(body.get("limit") or 100)
    more = start + limit < len(messages)
    cursor = str(start + limit) if more else ""
    return {
        "ok": True,
        "messages": messages[start : start + limit],
        "has_more": more,
        "response_metadata": {"next_cursor": cursor},
    }


def serve(fake: FakeSlack) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self, body: dict[str, Any]) -> None:
            path = urlparse(self.path).path
            method = "webhook" if path.startswith("/services/") else path.rsplit("/", 1)[-1]
            status, headers, out = fake.answer(method, body)
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                self.connection.close()
                return
            data = b"ok" if out is None else json.dumps(out).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw or "{}")
            else:
                body = {k: v[-1] for k, v in parse_qs(raw).items()}
            self._handle(body)

        def do_GET(self) -> None:
            self._handle({k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api/"


@dataclass
class SlackRoute:
    """The Slack sink delivered by the dispatcher as the service routes it (minimum low, ten posts a pass,
    bursts of more than ten summarised); change a field to change the policy."""

    outbox: Dispatcher
    transport: SlackSink
    floor: str = "low"
    max_posts: int = 10
    burst: int = 10

    def deliver(self) -> Outcome:
        return self.outbox.deliver(Route(self.transport, self.floor, self.max_posts, self.burst))
