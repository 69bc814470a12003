"""A device behind a NAT router, built from network namespaces, for fault tests.

`site()` builds, with names no other test uses:

    [device ns] efd<id> 10.a.b.2/24 --- efl<id> 10.a.b.1/24 [router ns]
                                        efw<id> 10.c.d.2/24 --- efh<id> 10.c.d.1/24 [host]

The device's default route is the router; the router forwards and masquerades
everything leaving by its WAN side, so the host (where the broker listens on
efh's address) sees only the router's address. The device's firewall accepts
loopback and replies to its own connections, and drops every new inbound
connection, as a device behind a home or mobile router does. The host routes
the device's subnet to the router, so an inbound attempt really reaches the
device's firewall (rather than failing for want of a route).

Every rule lives inside the two namespaces, and deleting them (always, on
exit) removes the veths, the host's route and the rules with them. Link faults
act on the router's LAN side and the device's interface, i.e. on the device's
link only: `impair` (loss, delay, rate), `cut` and `restore`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import processes

# setns(2) flag for a network namespace (Python 3.11 has no os.setns).
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
# Every `ip`/`iptables`/`tc` call is local and immediate; this only bounds a wedged one.
COMMAND_TIMEOUT = 20.0


class NetnsError(RuntimeError):
    """A namespace, link or firewall command failed (the message has its stderr)."""


def run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except FileNotFoundError as exc:
        raise NetnsError(f"{argv[0]} is not installed; `make test` installs it (Debian package)") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def exec_in(namespace: str, *argv: str) -> str:
    return run("ip", "netns", "exec", namespace, *argv)


def command_in(namespace: str, argv: list[str]) -> list[str]:
    """`argv` as a process inside `namespace` (`ip netns exec` execs it: the pid is the command's)."""
    return ["ip", "netns", "exec", namespace, *argv]


def process(
    argv: list[str], log: Path, *, namespace: str | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`argv` running (inside `namespace` when given), its output in `log`; stopped on exit
    with SIGTERM (SIGKILL if it lingers), so no namespace is kept alive by a leftover process."""
    return processes.running(command_in(namespace, argv) if namespace is not None else argv, log)


def unavailable() -> str | None:
    """Why this machine cannot run namespace tests (the kernel or our permissions), or None."""
    if shutil.which("ip") is None:
        return None  # not a reason to skip: `run` fails with what to install
    probe = f"efprobe-{secrets.token_hex(4)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        return f"cannot create a network namespace (`ip netns add`: {done.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def skip_unless_namespaces() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


def socket_in(namespace: str, family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    """A new (unbound) TCP socket inside `namespace`: it stays there whichever thread uses it.

    Only the thread that calls setns(2) moves, so a short-lived thread does, and
    the test process itself stays in the host's namespace."""
    made: list[socket.socket | BaseException] = []

    def enter_and_make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(os.path.join(NETNS_DIR, namespace), "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
            made.append(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as exc:
            made.append(exc)

    thread = threading.Thread(target=enter_and_make, name=f"setns-{namespace}")
    thread.start()
    thread.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in run("ip", "-4", "route", "show", "table", "all").splitlines():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    return used


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """`count` private /24s that no route on the host touches (10.128.0.0/9, picked at random)."""
    used = _used_networks()
    picked: list[ipaddress.IPv4Network] = []
    rng = random.Random()
    while len(picked) < count:
        candidate = ipaddress.ip_network(f"10.{rng.randint(128, 254)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(other) for other in used + picked):
            picked.append(candidate)
    return picked


@dataclass(frozen=True)
class Impairment:
    """What `Site.impair` could install on this kernel."""

    method: str  # "netem", or "iptables statistic + tbf" when the kernel has no netem
    loss: float  # fraction of packets dropped, each direction
    delay_ms: int  # one-way delay added; 0 when it could not be emulated
    rate: str  # tbf/netem rate limit, e.g. "1mbit"


@dataclass(frozen=True)
class Site:
    id: str
    device: str  # namespace names
    router: str
    device_if: str
    lan_if: str  # the router's side of the device's link
    wan_if: str
    host_if: str
    device_ip: str
    router_lan_ip: str
    router_wan_ip: str
    host_ip: str  # where the broker listens
    lan: str  # the device's subnet

    # -- link faults ----------------------------------------------------------

    def impair(self, *, loss: float, delay_ms: int, rate: str) -> Impairment:
        """Loss, delay and a rate limit on the device's link, both directions.

        netem when the kernel has it; otherwise random drops in the router's
        FORWARD chain (iptables statistic) and a token bucket (tbf) on both
        ends of the link, with no delay: nothing else here adds latency."""
        ends = ((self.router, self.lan_if), (self.device, self.device_if))
        try:
            for namespace, interface in ends:
                exec_in(
                    namespace,
                    *("tc", "qdisc", "add", "dev", interface, "root", "netem"),
                    *("loss", f"{loss * 100:g}%", "delay", f"{delay_ms}ms", "rate", rate),
                )
            return Impairment("netem", loss, delay_ms, rate)
        except NetnsError as exc:
            if "netem" not in str(exc) and "qdisc kind is unknown" not in str(exc):
                raise
            self.clear()
        for namespace, interface in ends:
            exec_in(
                namespace,
                *("tc", "qdisc", "add", "dev", interface, "root", "tbf"),
                *("rate", rate, "burst", "32kbit", "latency", "400ms"),
            )
        for direction in ("-i", "-o"):
            exec_in(
                self.router,
                *("iptables", "-A", "FORWARD", direction, self.lan_if, "-m", "statistic"),
                *("--mode", "random", "--probability", f"{loss:g}", "-j", "DROP"),
            )
        return Impairment("iptables statistic + tbf", loss, 0, rate)

    def dropped(self) -> int:
        """Packets the impairment dropped so far on the device's link (rule and qdisc counters)."""
        total = 0
        for line in exec_in(self.router, "iptables", "-L", "FORWARD", "-v", "-x", "-n").splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "DROP":
                total += int(fields[0])
        for namespace, interface in ((self.router, self.lan_if), (self.device, self.device_if)):
            stats = exec_in(namespace, "tc", "-s", "qdisc", "show", "dev", interface)
            total += sum(int(n) for n in re.findall(r"\(dropped (\d+),", stats))
        return total

    def clear(self) -> None:
        """Remove any impairment (qdiscs and drop rules)."""
        for namespace, interface in ((self.router, self.lan_if), (self.device, self.device_if)):
            with contextlib.suppress(NetnsError):  # none installed
                exec_in(namespace, "tc", "qdisc", "del", "dev", interface, "root")
        exec_in(self.router, "iptables", "-F", "FORWARD")

    def cut(self) -> None:
        """Unplug the device's link at the router: packets either way are lost, no error comes back."""
        run("ip", "-n", self.router, "link", "set", self.lan_if, "down")

    def restore(self) -> None:
        run("ip", "-n", self.router, "link", "set", self.lan_if, "up")


def _build(site: Site) -> None:
    dev, rtr = site.device, site.router
    run("ip", "netns", "add", dev)
    run("ip", "netns", "add", rtr)
    run("ip", "link", "add", site.device_if, "type", "veth", "peer", "name", site.lan_if)
    run("ip", "link", "set", site.device_if, "netns", dev)
    run("ip", "link", "set", site.lan_if, "netns", rtr)
    run("ip", "link", "add", site.wan_if, "type", "veth", "peer", "name", site.host_if)
    run("ip", "link", "set", site.wan_if, "netns", rtr)
    prefix = "/24"
    run("ip", "-n", dev, "addr", "add", site.device_ip + prefix, "dev", site.device_if)
    run("ip", "-n", rtr, "addr", "add", site.router_lan_ip + prefix, "dev", site.lan_if)
    run("ip", "-n", rtr, "addr", "add", site.router_wan_ip + prefix, "dev", site.wan_if)
    run("ip", "addr", "add", site.host_ip + prefix, "dev", site.host_if)
    for namespace, interface in ((dev, "lo"), (dev, site.device_if), (rtr, "lo"), (rtr, site.lan_if)):
        run("ip", "-n", namespace, "link", "set", interface, "up")
    run("ip", "-n", rtr, "link", "set", site.wan_if, "up")
    run("ip", "link", "set", site.host_if, "up")
    run("ip", "-n", dev, "route", "add", "default", "via", site.router_lan_ip)
    run("ip", "route", "add", site.lan, "via", site.router_wan_ip, "dev", site.host_if)
    exec_in(rtr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    exec_in(rtr, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", site.wan_if, "-j", "MASQUERADE")
    exec_in(dev, "iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
    exec_in(
        dev, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"
    )
    exec_in(dev, "iptables", "-A", "INPUT", "-j", "DROP")


def _tear_down(site: Site) -> None:
    """Delete what exists of `site`; deleting a namespace deletes its veths, their peers and routes."""
    for namespace in (site.device, site.router):
        if os.path.exists(os.path.join(NETNS_DIR, namespace)):
            with contextlib.suppress(NetnsError):
                run("ip", "netns", "del", namespace)
    for interface in (site.host_if, site.device_if, site.wan_if):  # still in the host if the build broke off
        if os.path.exists(f"/sys/class/net/{interface}"):
            with contextlib.suppress(NetnsError):
                run("ip", "link", "del", interface)


@contextlib.contextmanager
def site() -> Iterator[Site]:
    """A device behind a NAT router (see the module docstring); torn down on exit, whatever happened."""
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            raise NetnsError(f"{tool} is not installed; `make test` installs it (Debian package)")
    suffix = secrets.token_hex(3)
    lan, wan = _free_subnets(2)
    built = Site(
        id=suffix,
        device=f"ef-dev-{suffix}",
        router=f"ef-rtr-{suffix}",
        device_if=f"efd{suffix}",
        lan_if=f"efl{suffix}",
        wan_if=f"efw{suffix}",
        host_if=f"efh{suffix}",
        device_ip=str(lan[2]),
        router_lan_ip=str(lan[1]),
        router_wan_ip=str(wan[2]),
        host_ip=str(wan[1]),
        lan=str(lan),
    )
    try:
        _build(built)
        yield built
    finally:
        _tear_down(built)
