"""The inputs of `certwiz nginx render`, checked before anything is written.

Each check raises an InputError naming its field (exit 2, one line).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import der, inventory, names
from ..errors import InputError
from ..fsutil import require_outside, require_safe_source, require_safe_target
from ..profile import Profile

# Characters nginx or a URL would read specially; a proxy_pass target never needs them.
_URL_FORBIDDEN = re.compile(r"[\s\"'\\$;{}<>`]")


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
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. http://[::1/ (an unclosed IPv6 bracket)
        raise InputError("upstream", f"{value!r} {rule} ({exc})") from None
    if parts.scheme not in ("http", "https") or not hostname:
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
    host = hostname
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


def check_enroll(value: str) -> str:
    """Where `--enroll` sends /.well-known/est/: the `certwiz serve` URL, as nginx's
    proxy_pass target. `http://HOST:PORT` (no path) or `unix:/absolute/path`."""
    rule = "give the certwiz serve address: http://127.0.0.1:PORT or unix:/path/est.sock"
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if (
            not path.startswith("/")
            or _URL_FORBIDDEN.search(path)
            or ":" in path
            or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in path)
        ):
            raise InputError("enroll", f"{value!r}: an absolute socket path without ':', "
                             "spaces, quotes, '$' or ';' ({rule})")  # fmt: skip
        return f"http://unix:{path}"
    try:
        url = check_upstream(value)
    except InputError as exc:
        raise InputError("enroll", f"{exc.rule} ({rule})") from None
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.path not in ("", "/"):
        raise InputError("enroll", f"{value!r}: {rule} (http, no path)")
    return url.rstrip("/")


def server_files(profile: Profile, name: str) -> tuple[Path, Path]:
    """(fullchain, key) of NAME if it holds a valid server certificate; else InputError."""
    try:
        name = names.server_name(name).value  # as stored: lower case, canonical IP
    except InputError as exc:
        raise InputError("server", exc.rule) from None
    fix = f"issue one: certwiz server issue -p {profile.name} -n {name}"
    chain, key = profile.fullchain_path(name), profile.key_path(name)
    valid = inventory.valid_named(profile, name)
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
    """CA certificates above a client certificate: one per certificate in the chain."""
    return max(1, profile.chain.read_bytes().count(b"-----BEGIN CERTIFICATE-----"))


def check_sni_only(server: str, sni_only: bool) -> None:
    """An IP-address server cannot be --sni-only: clients send no SNI for an address."""
    if sni_only and names.server_name(server).kind == "IP":
        raise InputError(
            "sni-only",
            f"{server} is an IP address, and clients send no SNI for an address: "
            "it must be the default server of its listen (drop --sni-only, and give "
            "the other servers on that address --sni-only)",
        )


# Debian's (and Ubuntu's) bundle of the system's trusted CAs (package ca-certificates).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def check_upstream_ca(upstream: str, upstream_ca: Path | None) -> Path | None:
    """The CA file nginx verifies an https:// upstream with (None for http://).

    An https upstream that is not verified hands every identity header to whoever
    answers on its address, so there is no unverified mode: --upstream-ca FILE, else
    the system bundle, else refuse.
    """
    https = urlsplit(upstream).scheme == "https"
    if not https:
        if upstream_ca is not None:
            raise InputError("upstream-ca", "is only for an https:// upstream")
        return None
    host = upstream_host(upstream)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # found by the e2e test: "upstream SSL certificate does not match "127.0.0.1""
        raise InputError(
            "upstream",
            f"{upstream!r}: nginx cannot check an https upstream's certificate for an IP "
            f"address (only for a DNS name); use a name its certificate holds, e.g. "
            f"https://localhost:{urlsplit(upstream).port or 443}",
        )
    if upstream_ca is None:
        if not SYSTEM_CA_BUNDLE.is_file():
            raise InputError(
                "upstream-ca",
                f"an https:// upstream is verified: give --upstream-ca FILE (the CA that "
                f"signed its certificate; {SYSTEM_CA_BUNDLE} does not exist)",
            )
        return SYSTEM_CA_BUNDLE
    path = upstream_ca.expanduser().absolute()
    require_safe_source("upstream-ca", path, reread=True)  # nginx, as root, at every reload
    try:
        der.pem_to_der(path.read_bytes())
    except OSError as exc:
        raise InputError("upstream-ca", f"cannot read {path}: {exc.strerror}") from None
    except der.DERError:
        raise InputError("upstream-ca", f"{path} holds no PEM certificate") from None
    return path


def upstream_host(upstream: str) -> str:
    """The host nginx checks the upstream's certificate for (and sends as SNI)."""
    return urlsplit(upstream).hostname or ""


def check_error_log(path: Path | None, home: Path) -> Path | None:
    """--error-log: an absolute file path outside the certwiz home (nginx opens it at
    load, as root on a server, and appends what any client makes it log: pointed at
    index.txt or crl.pem, an anonymous client would corrupt the CA)."""
    if path is None:
        return None
    if not path.is_absolute():
        raise InputError("error-log", f"{str(path)!r} must be an absolute path")
    require_outside("error-log", path, home)
    require_safe_target("error-log", path, in_place=True)
    if path.is_dir():
        raise InputError("error-log", f"{path} is a directory; give a file")
    return path


REVOCATION_MODES = ("crl", "ocsp", "both")


@dataclass(frozen=True)
class Revocation:
    """How nginx learns of revocations: the CRL file, an OCSP responder, or both."""

    mode: str = "crl"
    responder: str | None = None
    cache: str | None = None  # a shared zone size ("1m"), or None: no cache

    @property
    def crl(self) -> bool:
        return self.mode in ("crl", "both")

    @property
    def ocsp(self) -> bool:
        return self.mode in ("ocsp", "both")


def check_revocation(
    profile: Profile, mode: str, responder: str | None = None, cache: str | None = None
) -> Revocation:
    """--revocation crl|ocsp|both, --ocsp-responder URL (else the profile's), --ocsp-cache."""
    from .. import ocsp

    if mode not in REVOCATION_MODES:
        raise InputError("revocation", f"{mode!r} is not one of {', '.join(REVOCATION_MODES)}")
    if mode == "crl":
        if responder is not None or cache is not None:
            field = "ocsp-responder" if responder is not None else "ocsp-cache"
            raise InputError(field, "needs --revocation ocsp or both")
        return Revocation()
    if cache is not None and cache != "off" and not re.fullmatch(r"[1-9][0-9]{0,3}[km]", cache):
        raise InputError("ocsp-cache", f"{cache!r} must be off or a size such as 1m or 512k")
    if mode == "ocsp" and profile.two_level:
        raise InputError(
            "revocation",
            f"profile {profile.name} has an intermediate, and nginx asks OCSP only about "
            "the client certificate: a revoked intermediate needs the root's CRL; "
            "use --revocation both",
        )
    url = responder if responder is not None else ocsp.configured_url(profile)
    if url is None:
        raise InputError(
            "ocsp-responder",
            f"give --ocsp-responder URL, or set the profile's: certwiz ca set -p "
            f"{profile.name} --ocsp-url URL",
        )
    return Revocation(
        mode, ocsp.check_url(url, "ocsp-responder"), None if cache == "off" else cache
    )
