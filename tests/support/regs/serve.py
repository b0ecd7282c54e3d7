#!/usr/bin/env python3
"""The Federal Register and eCFR stand-ins alone, for the test suite where the project's shared
tools are absent: regs_site.py, fr_site.py, ecfr_site.py and regs_common.py beside this file are
vendored unchanged from ../shared/tools; this is the part of policy_site.py that serves them
(routes, ETag / Last-Modified with 304s, /_control/fr_publish and /_control/ecfr_asof).

Run: python serve.py --regs DIR --port N
"""
from __future__ import annotations

import argparse
import json
import sys
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regs_site import Regs  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    regs: Regs

    def log_message(self, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["_control"] and len(parts) == 2 and parts[1] in ("fr_publish", "ecfr_asof"):
            body, status = self.regs.control(parts[1], {k: v[0] for k, v in parse_qs(url.query).items()})
            return self.send(status, json.dumps(body).encode(), "application/json")
        answer = self.regs.handle(parts, parse_qs(url.query), f"http://{self.headers.get('Host', '127.0.0.1')}")
        if answer is None:
            return self.send(404, b"not found", "text/plain")
        headers: dict[str, str] = {}
        if answer.status == 200:
            headers["ETag"] = answer.etag
            if answer.last_modified:
                headers["Last-Modified"] = format_datetime(answer.last_modified, usegmt=True)
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            fresh = inm == answer.etag if inm else bool(
                ims and answer.last_modified and parsedate_to_datetime(ims) >= answer.last_modified)
            if fresh:
                return self.send(304, b"", answer.ctype, headers)
        self.send(answer.status, answer.body, answer.ctype, headers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regs", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8700)
    args = ap.parse_args()
    Handler.regs = Regs(args.regs)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"serving on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
