"""Real brokers for tests: Mosquitto as a subprocess, amqtt in-process.

Both listen on free loopback ports over real TCP. Mosquitto gets a generated
config in the test's temp dir; it is started once per session (tests isolate
themselves by topic root, see `conftest.topic_root`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import tlscerts, waiting
from wire import urls

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def mosquitto(
    workdir: Path, *, extra_config: str = "", tls: tlscerts.TlsFiles | None = None
) -> Iterator[urls.BrokerUrl]:
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed; `make test` installs the Debian package")
    port = free_port()
    config = workdir / "mosquitto.conf"
    # Started as root, mosquitto drops to user "mosquitto", who cannot read the test's files.
    listener = f"user {pwd.getpwuid(os.getuid()).pw_name}\nlistener {port} 127.0.0.1\n"
    if tls is not None:
        listener += f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\n"
    config.write_text(
        listener + "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n" + extra_config
    )
    log = (workdir / "mosquitto.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        waiting.until(
            lambda: process.poll() is not None or _accepts(port), timeout=10, what="mosquitto to listen"
        )
        if process.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited with {process.returncode}: {(workdir / 'mosquitto.log').read_text()}"
            )
        if tls is not None:
            yield urls.BrokerUrl("127.0.0.1", port, tls=True, ca_file=str(tls.ca))
        else:
            yield urls.BrokerUrl("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
