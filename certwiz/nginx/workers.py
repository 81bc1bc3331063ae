"""nginx's processes as /proc shows them: the master (from its pid file) and its workers.

`nginx -s reload` only signals the master and returns. The new configuration (a new
CRL) serves only once the master has loaded it, started new workers and told the old
ones to stop: an old worker then closes its listening sockets and renames itself
"worker process is shutting down" while it finishes the requests it has. Until then
an old worker still accepts connections with the old CRL, which a large configuration
keeps open for a noticeable time (the first attack measured half a second).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

POLL = 0.02
SHUTTING_DOWN = "shutting down"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running, and not a zombie (containers often have no init that reaps orphans)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> set[int]:
    """Live processes whose parent is PID (an nginx master's workers and helpers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.add(int(entry.name))
    return found


def title(pid: int) -> str:
    """The process title nginx sets (e.g. `nginx: worker process`); '' when gone."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _value(text: str, pattern: str) -> str | None:
    found = re.search(pattern, text)
    return next((g for g in found.groups() if g is not None), None) if found else None


def pid_path(argv: list[str], output: str) -> Path | None:
    """Where the master's pid file is, from `nginx -V -T` OUTPUT and nginx's ARGV.

    In nginx's order: a `pid` in `-g`, else the `pid` directive of the dumped config
    (main context only, so any uncommented one), else the compiled-in --pid-path;
    a relative path is under the prefix (`-p`, else the compiled-in --prefix).
    """
    directive = r"(?:^|[\s;{}])pid\s+(?:\"([^\"]*)\"|'([^']*)'|([^\s;\"']+))\s*;"
    globals_ = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-g"]
    path = _value(" ".join(globals_), directive)
    if path is None:
        for line in output.splitlines():
            path = _value(line.split("#", 1)[0], directive)
            if path is not None:
                break
    if path is None:
        path = _value(output, r"--pid-path=(\S+)")
    if path is None:
        return None
    if not path.startswith("/"):
        prefixes = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-p"]
        prefix = prefixes[-1] if prefixes else _value(output, r"--prefix=(\S+)")
        if prefix is None:
            return None
        return Path(prefix) / path
    return Path(path)


def master_pid(path: Path | None) -> int | None:
    """The pid in PATH if that process is a running nginx master, else None (a stale
    pid file may name a process that has nothing to do with nginx)."""
    if path is None:
        return None
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and "master process" in title(pid) else None


def wait_replaced(master: int, old: set[int], timeout: float) -> list[int]:
    """Wait until MASTER runs a worker that is not in OLD and no process of OLD still
    accepts connections; the OLD ones that still do when TIMEOUT ends ([] on success).
    """
    deadline = time.monotonic() + timeout
    while True:
        now = children(master)
        still = sorted(pid for pid in old if pid in now and SHUTTING_DOWN not in title(pid))
        if not still and now - old:
            return []
        if time.monotonic() > deadline or not alive(master):
            return still or sorted(old)
        time.sleep(POLL)
