"""Real brokers for tests: Mosquitto as a subprocess, amqtt in-process.

Both listen on free loopback ports over real TCP. Mosquitto gets a generated
config in the test's temp dir; it is started once per session (tests isolate
themselves by topic root, see `conftest.topic_root`). `secured_mosquitto`
runs it as production does: no anonymous clients, the dynamic-security
plugin initialised with `mosquitto_ctrl dynsec init`, and TLS.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import secrets
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


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


DYNSEC_PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so")
DYNSEC_ADMIN = "admin"


def dynsec_plugin() -> str:
    for pattern in DYNSEC_PLUGIN_GLOBS:
        for found in glob.glob(pattern):
            return found
    raise RuntimeError("mosquitto_dynamic_security.so not found; `make test` installs the mosquitto package")


@contextmanager
def secured_mosquitto(workdir: Path, tls: tlscerts.TlsFiles) -> Iterator[urls.BrokerUrl]:
    """Mosquitto with dynamic security and TLS; yields the admin's URL (user and password in it)."""
    extra, password = dynsec_config(workdir)
    with mosquitto(workdir, extra_config=extra, tls=tls, anonymous=False) as url:
        yield dataclasses.replace(url, username=DYNSEC_ADMIN, password=password)


def dynsec_config(workdir: Path) -> tuple[str, str]:
    """Initialise a dynamic-security store in `workdir`: the config lines that load it,
    and the password of its admin account (DYNSEC_ADMIN)."""
    password = secrets.token_urlsafe(16)
    store = workdir / "dynamic-security.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(store), DYNSEC_ADMIN, password],
        check=True,
        capture_output=True,
    )
    return f"plugin {dynsec_plugin()}\nplugin_opt_config_file {store}\n", password


@contextmanager
def mosquitto(
    workdir: Path,
    *,
    extra_config: str = "",
    tls: tlscerts.TlsFiles | None = None,
    anonymous: bool = True,
) -> Iterator[urls.BrokerUrl]:
    """A `Mosquitto` that runs for the block; yields where it listens."""
    with Mosquitto(workdir, extra_config=extra_config, tls=tls, anonymous=anonymous) as broker:
        yield broker.url


class Mosquitto:
    """A Mosquitto process that tests can stop, kill and start again on the same port.

    `persistence`: keep retained messages in `workdir` across a restart (saved on a
    clean stop, and `autosave_interval` seconds after changes otherwise); without
    it a restart starts from an empty store. `host` is where it listens (a network
    namespace test gives the address of its own veth). `log_connections`: log each
    client's address (a NAT test reads whom the broker saw)."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistence: bool = False,
        autosave_interval: int = 1,
        extra_config: str = "",
        tls: tlscerts.TlsFiles | None = None,
        anonymous: bool = True,
        log_connections: bool = False,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed; `make test` installs the Debian package")
        self._binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port()
        self.config = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # Started as root, mosquitto drops to user "mosquitto", who cannot read the test's files.
        listener = f"user {pwd.getpwuid(os.getuid()).pw_name}\nlistener {self.port} {host}\n"
        if tls is not None:
            listener += f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\n"
        stored = (
            f"persistence true\npersistence_location {workdir}/\nautosave_interval {autosave_interval}\n"
            if persistence
            else "persistence false\n"
        )
        self.config.write_text(
            listener + f"allow_anonymous {'true' if anonymous else 'false'}\n" + stored + "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + ("log_type notice\n" if log_connections else "") + extra_config
        )
        self.url = (
            urls.BrokerUrl(host, self.port, tls=True, ca_file=str(tls.ca))
            if tls is not None
            else urls.BrokerUrl(host, self.port)
        )

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        assert self.process is None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self._binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        process = self.process
        waiting.until(
            lambda: process.poll() is not None or accepts(self.port, self.host),
            timeout=10,
            what="mosquitto to listen",
        )
        if process.poll() is not None:
            self.process = None
            raise RuntimeError(f"mosquitto exited with {process.returncode}: {self.log_path.read_text()}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): clients get no goodbye, a persistent store is saved."""
        self._end(kill=False)

    def kill(self) -> None:
        """A crash (SIGKILL): whatever was not saved yet is lost."""
        self._end(kill=True)

    def _end(self, *, kill: bool) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
