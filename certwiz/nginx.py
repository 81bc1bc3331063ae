"""NGINX: render the mTLS proxy configs of a profile, and test + reload a running nginx.

The config text lives in the `nginx/` templates; this module only checks the
inputs, picks the files and fills in absolute paths. Every value is checked
before anything is written, so a bad input leaves the output directory as it was.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import audit, database, der, names, openssl
from .errors import CertwizError, InputError, StateError
from .fsutil import not_plain_dir, write_atomic
from .profile import Profile
from .render import nginx_escape, render_nginx

NGINX_CMD_ENV = "CERTWIZ_NGINX_CMD"
DEFAULT_NGINX_CMD = "nginx"
# Debian puts nginx in /usr/sbin, which a non-login or non-root PATH often lacks.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
TLS_PROFILES = ("intermediate", "modern")  # Mozilla's names; one template, ssl.conf.j2
SSL_CONF, PROXY_CONF, SITE_CONF = "ssl.conf", "proxy.conf", "mtls_proxy.conf"
NGINX_TIMEOUT = 60

# Characters nginx or a URL would read specially; a proxy_pass target never needs them.
_URL_FORBIDDEN = re.compile(r"[\s\"'\\$;{}<>`]")


class NginxError(CertwizError):
    """nginx -t or nginx -s reload failed; the message holds nginx's telling line."""


@dataclass(frozen=True)
class Rendered:
    """What `render` wrote, for printing and for --json."""

    profile: str
    server: str
    listen: str
    upstream: str
    tls: str
    out_dir: str
    files: dict[str, str] = field(default_factory=dict)


def check_listen(value: str) -> str:
    """A `listen` value: PORT, IPv4:PORT, [IPv6]:PORT, *:PORT or hostname:PORT."""
    rule = "must be a port (1-65535) or ADDRESS:PORT, e.g. 443, 127.0.0.1:8443, [::1]:443"
    text = value.strip()
    address, sep, port = text.rpartition(":")
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise InputError("listen", f"{value!r} {rule}")
    if not sep:
        return port
    if address.startswith("[") and address.endswith("]"):
        try:
            if "%" in address:  # nginx cannot listen on a scope id, and it is not escapable
                raise ValueError
            ipaddress.IPv6Address(address[1:-1])
        except ValueError:
            raise InputError("listen", f"{value!r}: {address} is not an IPv6 address") from None
        return text
    if address == "*":
        return text
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        if ":" in address:
            raise InputError(
                "listen", f"{value!r}: put an IPv6 address in brackets, e.g. [::1]:443"
            ) from None
        names.dns_name(address, "listen")
    return text


def check_upstream(value: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment (nginx proxy_pass)."""
    rule = "must be an http:// or https:// URL, e.g. http://127.0.0.1:8080"
    if (
        not value
        or _URL_FORBIDDEN.search(value)
        or any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value)
    ):
        raise InputError("upstream", f"{value!r} {rule}, without spaces, quotes, '$' or ';'")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("upstream", f"{value!r} {rule}")
    if "@" in parts.netloc:
        raise InputError("upstream", f"{value!r}: credentials in the URL are not supported")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise InputError("upstream", f"{value!r}: no query string or fragment allowed")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or (parts.netloc.endswith(":") and port is None):
        raise InputError("upstream", f"{value!r}: the port must be a number from 1 to 65535")
    host = parts.hostname
    if ":" in host:
        try:
            if "%" in host:
                raise ValueError
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError("upstream", f"{value!r}: {host} is not an IPv6 address") from None
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            names.dns_name(host, "upstream")
    return value


def server_files(profile: Profile, name: str) -> tuple[Path, Path]:
    """(fullchain, key) of NAME if it holds a valid server certificate; else InputError."""
    try:
        names.server_name(name)
    except InputError as exc:
        raise InputError("server", exc.rule) from None
    fix = f"issue one: certwiz server issue -p {profile.name} -n {name}"
    chain, key = profile.fullchain_path(name), profile.key_path(name)
    valid = database.valid_named(database.read(profile.index), name)
    if not valid:
        raise InputError(
            "server", f"{name} has no valid certificate in profile {profile.name}; {fix}"
        )
    if not chain.is_file() or not key.is_file():
        raise InputError(
            "server",
            f"{name} has no server certificate chain and key "
            f"({chain.name}, {key.name}) in profile {profile.name}; {fix}",
        )
    try:
        leaf = der.pem_to_der(chain.read_bytes())
    except der.DERError:
        raise InputError("server", f"{chain} holds no PEM certificate; {fix}") from None
    for entry in valid:
        newcert = profile.newcert_path(entry.serial)
        if newcert.is_file() and der.pem_to_der(newcert.read_bytes()) == leaf:
            if "server" not in der.kind_of(newcert.read_bytes()):
                raise InputError(
                    "server",
                    f"{name} holds a {der.kind_of(newcert.read_bytes())}"
                    f" certificate, not a server one; {fix}",
                )
            return chain, key
    raise InputError(
        "server",
        f"{chain} is not the valid certificate of {name} (revoked, expired or replaced); {fix}",
    )


def verify_depth(profile: Profile) -> int:
    """CA certificates above a client certificate: one per certificate in ca.crt."""
    return max(1, profile.ca_cert.read_bytes().count(b"-----BEGIN CERTIFICATE-----"))


def _render_files(
    profile: Profile,
    server: str,
    upstream: str,
    listen: str,
    out: Path,
    tls: str,
    chain: Path,
    key: Path,
) -> dict[str, str]:
    """The three file texts; a path nginx cannot quote is an InputError naming its field."""
    for name, path in (("out", out), ("home", profile.dir)):
        try:
            nginx_escape(path)
        except ValueError as exc:
            raise InputError(name, f"cannot go into an nginx config: {exc}") from None
    depth = verify_depth(profile)
    site = render_nginx(
        "mtls_proxy.conf.j2",
        profile=profile.name,
        server_name=server,
        listen=listen,
        fullchain=chain,
        key=key,
        ca_cert=profile.ca_cert,
        crl=profile.crl,
        ssl_conf=out / SSL_CONF,
        proxy_conf=out / PROXY_CONF,
        upstream=upstream,
        verify_depth=depth,
    )
    return {
        SSL_CONF: render_nginx("ssl.conf.j2", modern=tls == "modern"),
        PROXY_CONF: render_nginx(PROXY_CONF),
        SITE_CONF: site,
    }


def render(
    profile: Profile,
    server: str,
    upstream: str,
    *,
    listen: str = "443",
    out: Path | None = None,
    tls: str = "intermediate",
) -> Rendered:
    """Write ssl.conf, proxy.conf and mtls_proxy.conf (absolute paths) into OUT.

    Default OUT is the profile's `nginx/` directory. Include mtls_proxy.conf in
    nginx's http { } block; `nginx -t` passes on the files as written.
    """
    if tls not in TLS_PROFILES:
        raise InputError("tls", f"{tls!r} is not one of {', '.join(TLS_PROFILES)}")
    listen = check_listen(listen)
    upstream = check_upstream(upstream)
    chain, key = server_files(profile, server)
    if not profile.crl.is_file():
        raise StateError(
            f"profile {profile.name} has no CRL; run: certwiz crl gen -p {profile.name}"
        )
    out_dir = (out if out is not None else profile.dir / "nginx").expanduser().absolute()
    # The default lives in the profile, which certwiz never writes out of; an --out
    # the user names is theirs to point anywhere. The files themselves are renamed
    # into place, which replaces a planted link at any of them.
    if out is None and (out_dir.exists() or out_dir.is_symlink()):
        problem = not_plain_dir(out_dir)
        if problem:
            raise InputError("out", problem)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("out", f"{out_dir} exists and is not a directory")
    texts = _render_files(profile, server, upstream, listen, out_dir, tls, chain, key)
    files = {}
    with audit.changing(profile, "nginx render", [server]) as change:  # one writer at a time
        out_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in texts.items():
            write_atomic(out_dir / filename, text, 0o644)
            files[filename.removesuffix(".conf")] = str(out_dir / filename)
        change.details["out"] = str(out_dir)
    return Rendered(
        profile.name,
        server,
        listen,
        upstream,
        tls,
        str(out_dir),
        {"site": files["mtls_proxy"], "ssl": files["ssl"], "proxy": files["proxy"]},
    )


def render_standalone(prefix: Path, site: Path, *, run_as_root: bool | None = None) -> str:
    """A whole nginx.conf around one site, all state under PREFIX (tests and demo)."""
    if run_as_root is None:
        run_as_root = os.geteuid() == 0
    return render_nginx(
        "standalone.conf.j2", prefix=str(prefix), site=site, run_as_root=run_as_root
    )


def command_words(spec: str | None = None) -> list[str]:
    """The nginx command as words: SPEC, else $CERTWIZ_NGINX_CMD, else `nginx` (shlex)."""
    text = spec if spec is not None else os.environ.get(NGINX_CMD_ENV, DEFAULT_NGINX_CMD)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError("nginx-cmd", f"{text!r} does not parse as a command: {exc}") from None
    if not words:
        raise InputError("nginx-cmd", "must not be empty; e.g. 'nginx -c /etc/nginx/nginx.conf'")
    return words


def find_binary(name: str = "nginx") -> str | None:
    """NAME on PATH, else in the sbin directories (absent from many PATHs)."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def resolve(words: Sequence[str]) -> list[str]:
    """WORDS with the program replaced by its full path; a CertwizError when missing."""
    found = find_binary(words[0])
    if found is None:
        raise CertwizError(
            f"nginx not found ({words[0]!r}); install it (apt-get install "
            f"nginx) or give --nginx-cmd / {NGINX_CMD_ENV}"
        )
    return [found, *words[1:]]


def reload_hint(words: Sequence[str]) -> str:
    """The one command a user runs to make nginx read a new CRL."""
    return f"{shlex.join([*words, '-t'])} && {shlex.join([*words, '-s', 'reload'])}"


_LOG_PREFIX = re.compile(
    r"^(?:nginx: )?(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(\[\w+\]) (?:\d+#\d+: )?"
)


def _telling_line(output: str, returncode: int) -> str:
    """nginx's most severe message, without its time stamp and pid."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for level in ("[emerg]", "[alert]", "[crit]", "[error]"):
        for line in lines:
            if level in line:
                return _LOG_PREFIX.sub(r"nginx: \1 ", line)
    return lines[-1] if lines else f"exit code {returncode}"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run nginx (or --nginx-cmd) without the CERTWIZ_*PASSPHRASE variables: it needs none."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=openssl.child_env(),
            timeout=NGINX_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NginxError(f"{shlex.join(argv)} did not finish in {NGINX_TIMEOUT}s") from None
    except OSError as exc:
        raise NginxError(f"cannot run {argv[0]}: {exc.strerror}") from None


def test_config(argv: Sequence[str]) -> None:
    """`nginx -t`: raise NginxError with nginx's error line when the config is bad."""
    proc = _run([*argv, "-t"])
    if proc.returncode != 0:
        line = _telling_line(proc.stderr + proc.stdout, proc.returncode)
        raise NginxError(f"nginx -t failed, nginx NOT reloaded: {line}")


def reload(argv: Sequence[str]) -> None:
    """`nginx -t`, and only if it passes `nginx -s reload` (nginx reads the CRL at load)."""
    test_config(argv)
    proc = _run([*argv, "-s", "reload"])
    if proc.returncode != 0:
        line = _telling_line(proc.stderr + proc.stdout, proc.returncode)
        raise NginxError(f"nginx -s reload failed: {line}")
