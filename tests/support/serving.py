"""``adapters serve`` as a real process on a loopback port, for tests and benchmarks that talk to it
over HTTP (with the official ``openai`` client, or urllib for what that client will not send)."""

import json
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cli_process import ADAPTERS, Process

READY_POLLS = 1500  # x 0.2 s: a bound on start-up (the base loads in seconds; a busy machine is slow)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: Process
    url: str
    api_key: str | None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body) of one raw request; the API key is sent unless headers say."""
        sent = {"Content-Type": "application/json"}
        if self.api_key:
            sent["Authorization"] = f"Bearer {self.api_key}"
        sent |= headers or {}
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    def health(self) -> dict[str, Any]:
        status, _, body = self.request("GET", "/health")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def stop(self) -> str:
        """Ctrl-C, then what the server wrote on stderr."""
        self.process.popen.send_signal(2)
        return self.process.finish(timeout=60).stderr


def start_server(*args: str, env: dict[str, str], workdir: Path, api_key: str | None = None) -> Server:
    """Start ``adapters serve ARGS`` on a free loopback port; return once /health answers."""
    port = free_port()
    argv = [*ADAPTERS, "serve", *args, "--port", str(port)]
    extra = {"ADAPTERS_API_KEY": api_key} if api_key else {}
    process = Process(argv, env | extra, workdir)
    server = Server(process, f"http://127.0.0.1:{port}", api_key)
    for _ in range(READY_POLLS):
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        try:  # the pause between polls, which also notices a server that died
            process.popen.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"adapters serve exited:\n{process.finish().stderr}")
    process.kill()
    raise AssertionError(f"adapters serve not ready after {READY_POLLS} polls:\n{process.finish().stderr}")
