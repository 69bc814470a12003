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


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
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
    with mosquitto_process(workdir, extra_config=extra_config, tls=tls, anonymous=anonymous) as (url, _):
        yield url


@contextmanager
def mosquitto_process(
    workdir: Path,
    *,
    extra_config: str = "",
    tls: tlscerts.TlsFiles | None = None,
    anonymous: bool = True,
) -> Iterator[tuple[urls.BrokerUrl, subprocess.Popen[bytes]]]:
    """`mosquitto`, with its process too (benchmarks read its CPU and memory)."""
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
        listener + f"allow_anonymous {'true' if anonymous else 'false'}\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n" + extra_config
    )
    log = (workdir / "mosquitto.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        waiting.until(
            lambda: process.poll() is not None or accepts(port), timeout=10, what="mosquitto to listen"
        )
        if process.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited with {process.returncode}: {(workdir / 'mosquitto.log').read_text()}"
            )
        if tls is not None:
            yield urls.BrokerUrl("127.0.0.1", port, tls=True, ca_file=str(tls.ca)), process
        else:
            yield urls.BrokerUrl("127.0.0.1", port), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
