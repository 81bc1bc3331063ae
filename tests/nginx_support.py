"""Finding nginx for the tests, and curl driven with a config file (no secrets in argv)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certwiz.nginx import find_binary
from tests.conftest import missing


def require_nginx() -> str:
    """The nginx binary; in CI (env CI set) a missing nginx FAILS, elsewhere it skips."""
    found = find_binary("nginx")
    if found is not None:
        return found
    missing("nginx", "apt-get install nginx")


def require_tool(name: str, package: str) -> str:
    """A client program the tests drive; under CI a missing one FAILS, elsewhere it skips."""
    found = find_binary(name)
    if found is not None:
        return found
    missing(name, f"apt-get install {package}")


def certwiz_ok(home: Path) -> Callable[..., None]:
    """certwiz in HOME for fixtures, in this process (conftest.invoke): every call must
    succeed. What the fixtures build is tested; building it needs no interpreter each."""
    from tests.conftest import invoke

    def call(*args: str) -> None:
        result = invoke(home, *args)
        assert result.returncode == 0, (args, result.stderr)

    return call


def secret_file(path: Path, text: str) -> Path:
    """TEXT (a password, maybe empty) alone in a new 0600 file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def require_curl() -> str:
    return require_tool("curl", "curl")


@dataclass
class CurlResult:
    returncode: int
    status: int
    body: str
    stderr: str


def _quote(value: str) -> str:
    """A value for a curl config file: double-quoted, `\\` and `"` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl(
    url: str,
    workdir: Path,
    *,
    ca: Path,
    resolve: str | None = None,
    p12: Path | None = None,
    password: str = "",
    cert: Path | None = None,
    key: Path | None = None,
    headers: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> CurlResult:
    """Real curl. The p12 password goes through a 0600 `-K` config file, never argv."""
    config = workdir / "curl.cfg"
    lines = [f"cacert = {_quote(str(ca))}"]
    if p12 is not None:
        lines += ["cert-type = P12", f"cert = {_quote(f'{p12}:{password}')}"]
    if cert is not None:
        lines.append(f"cert = {_quote(str(cert))}")
    if key is not None:
        lines.append(f"key = {_quote(str(key))}")
    for name, value in (headers or {}).items():
        lines.append(f"header = {_quote(f'{name}: {value}')}")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    body = workdir / "curl.body"
    argv = [require_curl(), "-sS", "-K", str(config), "-o", str(body), "-w", "%{http_code}"]
    if resolve:
        argv += ["--resolve", resolve]
    proc = subprocess.run(
        [*argv, *extra, url], capture_output=True, text=True, timeout=30, check=False
    )
    text = body.read_text(errors="replace") if body.exists() else ""
    body.unlink(missing_ok=True)
    status = int(proc.stdout.strip() or 0)
    return CurlResult(proc.returncode, status, text, proc.stderr)


def render_argv(profile: str, server: str, upstream: str, listen: str, out: Path) -> list[str]:
    """`certwiz nginx render` arguments for one site rendered into OUT."""
    return [
        "nginx",
        "render",
        "-p",
        profile,
        "--server",
        server,
        "--upstream",
        upstream,
        "--listen",
        listen,
        "--out",
        str(out),
    ]


def curl_as(
    profile: Path, client: str, server: str, port: int, workdir: Path, path: str = "/x", **kw: Any
) -> CurlResult:
    """curl https://SERVER:PORT/PATH on 127.0.0.1 as CLIENT of PROFILE (its PEM cert)."""
    return curl(
        f"https://{server}:{port}{path}",
        workdir,
        ca=profile / "ca.crt",
        resolve=f"{server}:{port}:127.0.0.1",
        cert=profile / "issued" / f"{client}.crt",
        key=profile / "private" / f"{client}.key",
        **kw,
    )


def killed_at_reload(home: Path, *args: str) -> None:
    """certwiz ARGS (with --reload) in HOME, SIGKILLed where it would reload nginx: after
    its change (a revocation and its CRL) was committed (a hang-up, a Ctrl-C, an OOM kill
    there). A forked child runs the CLI in process with nginx's reload replaced."""
    import signal

    from tests.conftest import invoke

    pid = os.fork()
    if pid == 0:
        try:
            import certwiz.nginx
            import certwiz.nginx.control

            def die(*_: object, **__: object) -> None:
                os.kill(os.getpid(), signal.SIGKILL)

            certwiz.nginx.reload = die  # type: ignore[attr-defined]
            certwiz.nginx.control.reload = die  # type: ignore[assignment]
            invoke(home, *args)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the kill did not land"
