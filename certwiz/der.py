"""Just enough DER to read a certificate's extendedKeyUsage without a process.

`certwiz list` classifies every certificate of a profile as server or client;
starting `openssl x509` once per certificate would not scale to fleets.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

EKU_OID = bytes.fromhex("551d25")  # 2.5.29.37
SERVER_AUTH = bytes.fromhex("2b06010505070301")  # 1.3.6.1.5.5.7.3.1
CLIENT_AUTH = bytes.fromhex("2b06010505070302")  # 1.3.6.1.5.5.7.3.2


class DERError(ValueError):
    pass


def read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, offset after) of the element at `pos`."""
    if pos + 2 > len(data):
        raise DERError("truncated element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise DERError("truncated content")
    return tag, data[pos : pos + length], pos + length


def children(content: bytes) -> list[tuple[int, bytes]]:
    items, pos = [], 0
    while pos < len(content):
        tag, value, pos = read_tlv(content, pos)
        items.append((tag, value))
    return items


def pem_to_der(pem: bytes) -> bytes:
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    start = pem.find(begin)
    stop = pem.find(end, start)
    if start < 0 or stop < 0:
        raise DERError("no PEM certificate")
    try:
        return base64.b64decode(b"".join(pem[start + len(begin) : stop].split()))
    except binascii.Error as exc:
        raise DERError(str(exc)) from exc


def extended_key_usages(der: bytes) -> set[bytes]:
    """The raw OIDs of the certificate's extendedKeyUsage (empty without one)."""
    _, cert, _ = read_tlv(der, 0)
    _, tbs = children(cert)[0]
    for tag, content in children(tbs):
        if tag != 0xA3:  # [3] extensions
            continue
        (_, extensions), *_ = children(content)
        for _, extension in children(extensions):
            fields = children(extension)
            if fields[0][1] == EKU_OID:
                _, value = fields[-1]
                (_, usages), *_ = children(value)
                return {oid for _, oid in children(usages)}
    return set()


def kind_of(pem: bytes) -> str:
    """'server', 'client', 'server+client' or 'other', from the EKU."""
    try:
        usages = extended_key_usages(pem_to_der(pem))
    except (DERError, IndexError, ValueError):
        return "unknown"
    kinds = [k for k, oid in (("server", SERVER_AUTH), ("client", CLIENT_AUTH)) if oid in usages]
    return "+".join(kinds) or "other"


UTC_TIME, GENERALIZED_TIME = 0x17, 0x18


def _time(tag: int, content: bytes) -> datetime:
    """An X.509 Time (UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ)."""
    fmt = {UTC_TIME: "%y%m%d%H%M%SZ", GENERALIZED_TIME: "%Y%m%d%H%M%SZ"}.get(tag)
    if fmt is None:
        raise DERError(f"tag {tag:#x} is not a time")
    return datetime.strptime(content.decode("ascii"), fmt).replace(tzinfo=UTC)


def _tbs(der: bytes) -> list[tuple[int, bytes]]:
    _, outer, _ = read_tlv(der, 0)
    return children(children(outer)[0][1])


CN_OID = bytes.fromhex("550403")  # 2.5.4.3


def _cert_fields(der: bytes) -> list[tuple[int, bytes]]:
    """TBSCertificate without its [0] version: serial, signature, issuer, validity, subject..."""
    fields = _tbs(der)
    return fields[1:] if fields and fields[0][0] == 0xA0 else fields


def cert_validity(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a DER certificate."""
    (b_tag, before), (a_tag, after) = children(_cert_fields(der)[3][1])
    return _time(b_tag, before), _time(a_tag, after)


def cert_serial(der: bytes) -> str:
    """The serial number in upper-case hex, as openssl ca writes it."""
    value = int.from_bytes(_cert_fields(der)[0][1], "big")
    text = f"{value:X}"
    return "0" * (len(text) % 2) + text


def cert_subject_cn(der: bytes) -> str | None:
    """The last commonName of the subject (UTF8String/PrintableString/...)."""
    found = None
    for _, rdn in children(_cert_fields(der)[4][1]):
        for _, attribute in children(rdn):
            (_, oid), (tag, value) = children(attribute)[:2]
            if oid == CN_OID:
                found = value.decode("utf-16-be" if tag == 0x1E else "utf-8", "replace")
    return found


def crl_times(der: bytes) -> tuple[datetime, datetime | None]:
    """(thisUpdate, nextUpdate) of a DER CRL; nextUpdate is optional in RFC 5280."""
    times = [_time(tag, value) for tag, value in _tbs(der) if tag in (UTC_TIME, GENERALIZED_TIME)]
    if not times:
        raise DERError("no thisUpdate")
    return times[0], times[1] if len(times) > 1 else None
