"""What `certwiz doctor` can find: one Finding per problem, each with an id that
never changes (tests and scripts match on it), a severity, where, why and the fix.

ERROR means a certificate the CA did not vouch for (foreign, revoked, expired)
can reach the application, or nobody can (an outage); WARNING means a window,
a weakness or a deadline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR, WARNING = "error", "warning"

# id -> (severity, why it matters, the fix). The message adds the specifics.
CATALOGUE: dict[str, tuple[str, str, str]] = {
    "verify-client-off": (
        ERROR,
        "any client, with or without a certificate, reaches the application",
        "set `ssl_verify_client on;` in this server",
    ),
    "verify-optional-unchecked": (
        ERROR,
        "with optional verification a foreign, expired or revoked certificate "
        "reaches the application unless $ssl_client_verify is checked first",
        'add `if ($ssl_client_verify != "SUCCESS") { return 403; }` to the server, '
        "or use `ssl_verify_client on;`",
    ),
    "listen-without-ssl": (
        ERROR,
        "a plain-http request skips TLS and with it the client certificate check",
        "serve plain http (a redirect to https, if any) in a server block of its own",
    ),
    "error-page-passes": (
        ERROR,
        "a request nginx or a certificate guard refused (a bad or missing client "
        "certificate, plain http on the TLS port, a malformed request read before the "
        "check) is handed to the application anyway",
        "answer those statuses (400, 414, 421, 494-497 and what the guards return) with "
        "`return` in a location of their own, as the rendered config does, never one "
        "that proxies",
    ),
    "revocation-off": (
        ERROR,
        "a revoked client certificate is accepted until it expires",
        "add `ssl_crl PROFILE/crl.pem;` (or `ssl_ocsp on;` with a responder)",
    ),
    "ocsp-leaf-only": (
        ERROR,
        "`ssl_ocsp leaf` asks only about the client certificate: a revoked intermediate "
        "still lets every client it signed in",
        "add `ssl_crl PROFILE/crl-chain.pem;` (certwiz nginx render --revocation both)",
    ),
    "ocsp-no-responder": (
        ERROR,
        "nginx has nobody to ask, so it refuses every client certificate",
        "ssl_ocsp_responder http://IP:PORT/ (certwiz ocsp serve), or certwiz ca set "
        "--ocsp-url and re-issue the certificates",
    ),
    "crl-not-current": (
        ERROR,
        "the CRL nginx reads lacks revocations the profile made: those clients still get in",
        "point ssl_crl at the profile's CRL file (crl-chain.pem in a two-level profile, else "
        "crl.pem), then nginx -t && nginx -s reload",
    ),
    "crl-expired": (
        ERROR,
        "with an expired CRL nginx refuses every client certificate (12:CRL has expired)",
        "certwiz crl gen -p PROFILE, then nginx -s reload; run it from a timer",
    ),
    "crl-expiring": (
        WARNING,
        "when the CRL passes its nextUpdate nginx refuses every client",
        "certwiz crl gen -p PROFILE (and reload nginx) before then; run it from a timer",
    ),
    "crl-missing-for-ca": (
        ERROR,
        "nginx checks a CRL for every CA of the chain: without one every client is refused "
        "(3:unable to get certificate CRL)",
        "put the CRL of every CA in the ssl_client_certificate file into the ssl_crl file",
    ),
    "trust-too-wide": (
        ERROR,
        "a certificate from another CA (another profile, a public CA) is accepted",
        "trust only the profile's CA: ssl_client_certificate PROFILE/ca.crt, and no "
        "other CA in ssl_trusted_certificate",
    ),
    "verify-depth-too-small": (
        ERROR,
        "clients whose chain is longer than ssl_verify_depth are refused",
        "set ssl_verify_depth to the number of CA certificates above the client certificate",
    ),
    "server-cert-key-mismatch": (
        ERROR,
        "the certificate and key do not belong together: nginx cannot serve TLS",
        "point ssl_certificate_key at the key of this certificate (or re-issue both)",
    ),
    "server-cert-expired": (
        ERROR,
        "clients refuse an expired server certificate",
        "certwiz server issue (after revoking the old one) and reload nginx",
    ),
    "server-cert-expiring": (
        WARNING,
        "clients will refuse the server certificate once it expires",
        "issue a new server certificate before then and reload nginx",
    ),
    "server-cert-name-missing": (
        ERROR,
        "clients that check the host name refuse the server (or are told to skip the check)",
        "issue the server certificate with a SAN for every server_name (--san)",
    ),
    "header-forgeable": (
        ERROR,
        "the application trusts an identity header the client can write itself",
        "set every X-Client-* header from $ssl_client_* with proxy_set_header in each "
        "location that proxies (a proxy_set_header in a location drops all inherited ones)",
    ),
    "header-underscores": (
        WARNING,
        "with underscores_in_headers on, a client's X_Client_Verify reaches the application, "
        "which many frameworks read as X-Client-Verify",
        "remove `underscores_in_headers on;` (or set it off in this server)",
    ),
    "upstream-plain-http": (
        WARNING,
        "the client identity and the request cross the network unencrypted and unauthenticated",
        "proxy to 127.0.0.1 (or a unix socket), or use https:// with proxy_ssl_verify on",
    ),
    "session-resumption": (
        WARNING,
        "a resumed TLS session skips the CRL check: a revoked client keeps getting in "
        "until its session expires",
        "ssl_session_cache off; ssl_session_tickets off;",
    ),
    "weak-protocol": (
        WARNING,
        "old TLS versions have known attacks",
        "ssl_protocols TLSv1.2 TLSv1.3;",
    ),
    "weak-cipher": (
        WARNING,
        "the cipher list admits broken or unauthenticated ciphers",
        "use the rendered ssl.inc (Mozilla intermediate) ciphers",
    ),
    "shared-listen-unguarded": (
        ERROR,
        "servers sharing a listen address verify a client without SNI with the default "
        "server's CA: a client of one profile reaches another profile's application by Host",
        "re-render every server with `certwiz nginx render` (it adds the $ssl_server_name "
        "handshake guard), or give each profile its own listen address",
    ),
    "upstream-without-mtls": (
        ERROR,
        "the application behind it is reachable without a client certificate of the profile",
        "serve that upstream only from servers that verify the profile's client certificates "
        "(ssl_verify_client on with ssl_client_certificate PROFILE/ca.crt), or remove this pass",
    ),
    "no-server-for-profile": (
        WARNING,
        "no server in this configuration trusts the profile's CA or serves its certificate",
        "give --nginx-conf the configuration that nginx loads for this profile",
    ),
    "file-unreadable": (
        WARNING,
        "doctor could not read a file the configuration names, so it could not check it",
        "run doctor as a user who can read it (nginx itself needs it too)",
    ),
    "ca-expired": (
        ERROR,
        "every certificate of the profile fails verification",
        "create a new CA (certwiz ca init) and re-issue",
    ),
    "ca-expiring": (
        WARNING,
        "when the CA expires every certificate of the profile stops working",
        "plan the CA's replacement now",
    ),
    "client-cert-server-auth": (
        WARNING,
        "a client certificate that also carries serverAuth can impersonate a server of this CA",
        "revoke it and issue a clientAuth-only one: certwiz client issue",
    ),
    "leaf-is-ca": (
        ERROR,
        "a leaf certificate with CA:TRUE can sign certificates that nginx accepts",
        "revoke it now (certwiz revoke --serial) and re-issue",
    ),
}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    file: str
    line: int
    message: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.severity.upper():7} {self.id}  {where}\n  {self.message}\n  fix: {self.fix}"


def make(finding_id: str, where: tuple[str, int], detail: str, fix: str | None = None) -> Finding:
    severity, why, default_fix = CATALOGUE[finding_id]
    return Finding(finding_id, severity, where[0], where[1], f"{detail}: {why}", fix or default_fix)


def exit_code(found: list[Finding]) -> int:
    """0 clean, 1 warnings only, 2 at least one error."""
    if any(f.severity == ERROR for f in found):
        return 2
    return 1 if found else 0
