"""A local CloudTrail LookupEvents endpoint in the AWS JSON 1.1 wire protocol.

moto has no LookupEvents, so the tests serve it themselves: the real botocore client,
paginator, signing and retry code all run against it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class LookupService:
    events: list[dict[str, Any]] = field(default_factory=list)  # raw CloudTrail records
    page_size: int = 2
    throttle_next: int = 0  # answer this many requests with ThrottlingException
    garbage: list[Any] = field(default_factory=list)  # items added to every page's Events, as they are
    stuck: bool = False  # every page answers with the NextToken it was asked for (the first with "0"): a loop
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        start = datetime.fromtimestamp(body["StartTime"]).astimezone()
        end = datetime.fromtimestamp(body["EndTime"]).astimezone()
        matching = [e for e in self.events if start <= datetime.fromisoformat(e["eventTime"]) <= end]
        offset = int(body.get("NextToken", "0"))
        page = matching[offset : offset + min(self.page_size, body.get("MaxResults", 50))]
        out: dict[str, Any] = {
            "Events": [
                {"EventId": e["eventID"], "EventName": e["eventName"], "CloudTrailEvent": json.dumps(e)} for e in page
            ]
            + self.garbage
        }
        if self.stuck:
            out["NextToken"] = body.get("NextToken", "0")
        elif offset + len(page) < len(matching):
            out["NextToken"] = str(offset + len(page))
        return 200, out


def serve(service: LookupService) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            target = self.headers.get("X-Amz-Target", "")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if not target.endswith("CloudTrail_20131101.LookupEvents"):  # older SDKs omit the namespace
                status, out = 400, {"__type": "UnknownOperationException", "message": target}
            else:
                status, out = service.answer(body)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
