"""What doctor reads from the profile itself (its CAs, CRLs, databases), and the findings
about the profile alone: CAs and CRLs expiring, leaves that could act as a CA or a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from .. import database
from ..nginx import verify_depth
from ..profile import Profile
from . import pki
from .findings import Finding, make

CA_WARN = timedelta(days=60)


CRL_WARN = timedelta(days=7)


@dataclass
class Level:
    """One CA of the profile's chain with its CRL and the revocations of its database."""

    ca: x509.Certificate
    crl: x509.CertificateRevocationList | None
    crl_der: bytes | None
    revoked: set[int]


@dataclass
class ProfileFacts:
    """What the profile says is true: its CAs, their CRLs, their revocations."""

    profile: Profile
    cas: list[x509.Certificate]
    ca_ders: set[bytes]
    levels: list[Level]
    now: datetime
    findings: list[Finding] = field(default_factory=list)

    @property
    def depth(self) -> int:
        """CA certificates above a client certificate: what render writes as ssl_verify_depth."""
        return verify_depth(self.profile)

    @property
    def profile_crl_ders(self) -> set[bytes]:
        return {level.crl_der for level in self.levels if level.crl_der is not None}


def crl_threshold(crl: x509.CertificateRevocationList) -> timedelta:
    """Warn in the last quarter of a CRL's life, at most 7 days ahead."""
    nxt = crl.next_update_utc
    if nxt is None:
        return CRL_WARN
    return min(CRL_WARN, (nxt - crl.last_update_utc) / 4)


def crl_age_findings(
    crl: x509.CertificateRevocationList, where: tuple[str, int], now: datetime
) -> list[Finding]:
    nxt = crl.next_update_utc
    issuer = crl.issuer.rfc4514_string()
    if nxt is None:
        return []
    if nxt <= now:
        return [make("crl-expired", where, f"the CRL of {issuer} expired at {nxt:%Y-%m-%d %H:%M}Z")]
    if nxt - now <= crl_threshold(crl):
        return [
            make("crl-expiring", where, f"the CRL of {issuer} expires at {nxt:%Y-%m-%d %H:%M}Z")
        ]
    return []


def _level(profile: Profile, now: datetime, findings: list[Finding]) -> Level:
    """The signing CA of PROFILE (or of its root/), its CRL and its revoked serials."""
    ca = pki.certificates(profile.signing_cert)[0]
    crl = None
    try:
        crl = pki.crls(profile.crl)[0]
    except pki.Unreadable as exc:
        findings.append(make("file-unreadable", (str(profile.crl), 0), str(exc)))
    else:
        findings.extend(crl_age_findings(crl, (str(profile.crl), 0), now))
    entries = database.read(profile.index)
    revoked = {e.serial_int for e in entries if e.flag == "R"}
    return Level(ca, crl, pki.der_crl(crl) if crl is not None else None, revoked)


def profile_facts(profile: Profile) -> ProfileFacts:
    """Read the profile (CA chain, CRLs, databases) and check it on its own.

    A two-level profile has two CAs: the intermediate (PROFILE/, signs the leaves)
    and the root (PROFILE/root/, signs the intermediate); each has its CRL.
    """
    now = pki.now()
    findings: list[Finding] = []
    cas = pki.certificates(profile.chain)
    levels = [_level(profile, now, findings)]
    if profile.two_level:
        levels.append(_level(profile.root, now, findings))
    facts = ProfileFacts(profile, cas, {pki.der(c) for c in cas}, levels, now, findings)
    for ca in cas:
        end = pki.not_after(ca)
        label = f"CA certificate {pki.subject_text(ca)}"
        if end <= now:
            findings.append(make("ca-expired", (str(profile.chain), 0),
                                 f"{label} expired at {end:%Y-%m-%d}"))  # fmt: skip
        elif end - now <= CA_WARN:
            findings.append(make("ca-expiring", (str(profile.chain), 0),
                                 f"{label} expires at {end:%Y-%m-%d}"))  # fmt: skip
    findings += _leaf_findings(profile, database.read(profile.index), now)
    return facts


def _leaf_findings(profile: Profile, entries: list[database.Entry], now: datetime) -> list[Finding]:
    out = []
    for number, entry in enumerate(entries, 1):
        if entry.status(now) != "valid":
            continue
        try:
            cert = pki.certificates(profile.newcert_path(entry.serial))[0]
        except pki.Unreadable:
            continue  # `certwiz check` reports a missing newcerts file
        where = (str(profile.index), number)
        label = f"certificate {entry.serial} ({entry.subject})"
        kinds = pki.usages(cert)
        if pki.is_ca(cert) and kinds:
            out.append(make("leaf-is-ca", where, f"{label} has CA:TRUE and an EKU of a leaf"))
        if kinds == {"server", "client"} or ("client" in kinds and "server" in kinds):
            out.append(make("client-cert-server-auth", where,
                            f"{label} carries both clientAuth and serverAuth"))  # fmt: skip
    return out
