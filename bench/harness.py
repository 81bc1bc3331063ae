"""Timing contenders fairly on a shared machine: alternate them, keep every sample.

Each run of a case times every contender once, in an order rotated from run to run
(A B C, B C A, ...), so a machine that slows down or speeds up during the benchmark hits
all of them alike. A sample is the wall time of the contender's processes, their CPU time
(user + system of every child, from wait4) and the largest resident set among them.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# A contender is one run of the work: it gets a fresh scratch directory and returns
# the processes to time, as argv lists (run one after another, or several at once).
Step = Sequence[str] | Callable[[], None]
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time (apt-get install time)


@dataclass
class Sample:
    wall: float
    cpu: float
    max_rss_kb: int


@dataclass
class Result:
    case: str
    contender: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def low(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def high(self) -> float:
        return max(s.wall for s in self.samples)

    @property
    def max_rss_mb(self) -> float:
        return max(s.max_rss_kb for s in self.samples) / 1024


class Runner:
    """Runs processes and adds up wall, CPU and peak memory of everything it started."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.wall = self.cpu = 0.0
        self.max_rss_kb = 0

    def run(self, argv: Sequence[str | os.PathLike[str]], *, shell: bool = False) -> None:
        words = [str(a) for a in argv] if not shell else ["sh", "-c", str(argv[0])]
        report = None
        if GNU_TIME:  # the process's own peak: wait4's figure includes the forking parent's
            fd, report = tempfile.mkstemp(prefix="rss-")
            os.close(fd)
            words = [GNU_TIME, "-q", "-f", "%M", "-o", report, *words]
        start = time.perf_counter()
        proc = subprocess.Popen(
            words,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.wall += time.perf_counter() - start
        self.cpu += usage.ru_utime + usage.ru_stime
        if report is not None:
            text = Path(report).read_text().strip()
            os.unlink(report)
            self.max_rss_kb = max(self.max_rss_kb, int(text.splitlines()[-1]) if text else 0)
        if proc.returncode != 0:
            text = stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"{argv[0]} ... exited {proc.returncode}: {text[-3:]}")

    def sample(self) -> Sample:
        return Sample(self.wall, self.cpu, self.max_rss_kb)


# A contender: (name, prepare, work). prepare(run_index) makes what the work needs and is
# not timed; work(runner, run_index) starts the timed processes through the runner.
Contender = tuple[str, Callable[[int], None] | None, Callable[[Runner, int], None]]


def alternate(
    case: str, contenders: list[Contender], runs: int, env: dict[str, str], cwd: Path
) -> list[Result]:
    results = {name: Result(case, name) for name, _, _ in contenders}
    for index in range(runs):
        shift = index % len(contenders)
        for name, prepare, work in contenders[shift:] + contenders[:shift]:
            if prepare is not None:
                prepare(index)
            runner = Runner(env, cwd)
            work(runner, index)
            results[name].samples.append(runner.sample())
    return list(results.values())


def machine() -> dict[str, str]:
    """What the numbers depend on, for results.md."""

    def out(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "not installed"

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    easyrsa = out("/usr/share/easy-rsa/easyrsa", "--version").splitlines()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "load average (1, 5, 15 min) when written": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "openssl": out("openssl", "version"),
        "easy-rsa": next(
            (x.split(":", 1)[1].strip() for x in easyrsa if x.startswith("Version:")), "?"
        ),
    }
