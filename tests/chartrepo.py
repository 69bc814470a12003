"""A real Helm chart repository over HTTP on loopback: index.yaml plus packaged charts."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import helm_python


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(charts: list[Path], workdir: Path) -> Iterator[str]:
    """Package `charts` into `workdir`, index them, serve them; yield the repository URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    for chart in charts:
        helm_python.package(chart, destination=workdir)
    handler = functools.partial(_QuietHandler, directory=str(workdir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(workdir, base_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
