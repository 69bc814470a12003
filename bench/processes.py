"""Processes the benchmarks start and measure: CPU and peak memory from /proc, and stopping."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int | str, field: str) -> int:
    """A kB field of /proc/<pid>/status (`pid` "self" for this process); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mib(pid: int) -> float:
    """VmHWM of process `pid` in MiB (0.0 once it is gone)."""
    return status_kib(pid, "VmHWM") / 1024


