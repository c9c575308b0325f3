"""Serve a directory's files over HTTP, read-only and without directory listings: the public Ignition configs.

python3 scripts/serve.py --bind 127.0.0.1 --port 8080 build/dev/ignition
"""

from __future__ import annotations

import argparse
import functools
import http.server
from typing import Any


class FilesOnly(http.server.SimpleHTTPRequestHandler):
    """Files, never a listing of a directory."""

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "Not Found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("directory")
    args = parser.parse_args()
    handler = functools.partial(FilesOnly, directory=args.directory)
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as server:
        print(f"serving {args.directory} at http://{args.bind}:{args.port}/ (files only)", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
