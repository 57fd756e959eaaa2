"""S3's GetObject over HTTP on 127.0.0.1 (path-style, as boto3 addresses a local endpoint), with a hook run
before each answer: a test holds requests there to see them overlap, a benchmark waits there as S3 waits
before its first byte. It serves what it is given and answers NoSuchKey for the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

# the fake credentials every test and benchmark reaches a local AWS with
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_NO_SUCH_KEY = b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>"


class Objects:
    """The objects by (bucket, key), the hook, and how many GETs were in flight at most."""

    def __init__(self, objects: Mapping[tuple[str, str], bytes], before: Callable[[str], None] | None = None) -> None:
        self.objects = dict(objects)
        self.before = before or (lambda key: None)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.served = 0

    def get(self, bucket: str, key: str) -> bytes | None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.before(key)
            return self.objects.get((bucket, key))
        finally:
            with self.lock:
                self.in_flight -= 1
                self.served += 1


def serve(objects: Objects) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive, as botocore's connection pool expects
        disable_nagle_algorithm = True  # or the body waits for the headers' delayed ACK (40 ms a GET)

        def do_GET(self) -> None:
            bucket, _, key = unquote(urlsplit(self.path).path).lstrip("/").partition("/")
            body = objects.get(bucket, key)
            if body is None:
                self.answer(
                    404, b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>", "application/xml"
                )
            else:
                self.answer(200, body, "application/octet-stream")

        def answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"0"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
