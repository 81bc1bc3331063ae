"""A byte-level reader of the exact DER shapes `openssl ca` writes for certwiz.

The certificates and CRLs certwiz issues have a few fixed shapes, and for those this
small reader answers kind, validity, "a plain client", a CRL's serials and its signature
exactly as cryptography would, without importing cryptography.x509 (about 80 ms of every
`list` and every change) and without building an object per extension (most of `list`'s
time at 7,000 certificates). Anything it does not recognise to the byte raises _Unusual
(the `_shape`/`_crl_shape` entry points return None), and der.py asks cryptography.
"""

from __future__ import annotations

from datetime import UTC, datetime


class _Unusual(Exception):
    """Not a shape _Shape knows to the byte: cryptography answers instead."""


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at POS, which must end by END."""
    if pos + 2 > end:
        raise _Unusual
    tag, size = data[pos], data[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise _Unusual  # multi-byte tags: none in the shapes known here
    if size & 0x80:
        count = size & 0x7F
        if not 1 <= count <= 3 or pos + count > end or data[pos] == 0:
            raise _Unusual
        size = int.from_bytes(data[pos : pos + count], "big")
        if size < 0x80:
            raise _Unusual  # not DER's shortest length
        pos += count
    if pos + size > end:
        raise _Unusual
    return tag, pos, pos + size


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, pos = [], start
    while pos < end:
        element = _tlv(data, pos, end)
        found.append(element)
        pos = element[2]
    return found


_BC, _KU, _EKU = b"\x55\x1d\x13", b"\x55\x1d\x0f", b"\x55\x1d\x25"
_SKI, _AKI, _SAN = b"\x55\x1d\x0e", b"\x55\x1d\x23", b"\x55\x1d\x11"
_SERVER_AUTH, _CLIENT_AUTH = (
    b"\x2b\x06\x01\x05\x05\x07\x03\x01",
    b"\x2b\x06\x01\x05\x05\x07\x03\x02",
)
_V3 = b"\xa0\x03\x02\x01\x02"
_TIME_SIZES = {0x17: 13, 0x18: 15}  # UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ


def _signed(der: bytes) -> tuple[int, list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """A signed object (certificate, CRL) filling DER: SEQUENCE {to-be-signed SEQUENCE,
    algorithm SEQUENCE, signature BIT STRING of whole bytes}. Returns where the to-be-signed
    part starts, the three parts, and the to-be-signed part's elements."""
    tag, start, end = _tlv(der, 0, len(der))
    top = _children(der, start, end) if tag == 0x30 and end == len(der) else []
    if [t[0] for t in top] != [0x30, 0x30, 0x03]:
        raise _Unusual
    if top[2][2] - top[2][1] < 2 or der[top[2][1]] != 0:
        raise _Unusual
    return start, top, _children(der, top[0][1], top[0][2])


class _Shape:
    """A v3 certificate read down to its extensions, each known extension's value checked
    to be one of the exact encodings openssl writes; _Unusual otherwise."""

    def __init__(self, der: bytes) -> None:
        _, top, tbs = _signed(der)
        tags = [t[0] for t in tbs]
        if tags != [0xA0, 0x02, 0x30, 0x30, 0x30, 0x30, 0x30, 0xA3]:
            raise _Unusual  # v3 with extensions, no unique identifiers
        if der[tbs[0][1] - 2 : tbs[0][2]] != _V3:
            raise _Unusual
        algorithm = der[tbs[2][1] - 2 : tbs[2][2]]
        if algorithm not in _SIGNATURES or der[top[1][1] - 2 : top[1][2]] != algorithm:
            raise _Unusual
        _name(der, *tbs[3])
        _name(der, *tbs[5])
        _, serial_start, serial_end = tbs[1]
        serial = der[serial_start:serial_end]
        if (
            not serial
            or serial[0] & 0x80
            or (len(serial) > 1 and serial[0] == 0 and serial[1] < 0x80)
        ):
            raise _Unusual  # negative or not minimal
        times = _children(der, tbs[4][1], tbs[4][2])
        if len(times) != 2:
            raise _Unusual
        self.validity = (_time(der, *times[0]), _time(der, *times[1]))
        self.subject = der[tbs[4][2] : tbs[5][2]]  # the whole Name: from validity's end
        self.key = der[tbs[6][1] : tbs[6][2]]  # SubjectPublicKeyInfo's content
        self.key_info = der[tbs[5][2] : tbs[6][2]]  # ... and the whole of it
        key = _children(der, tbs[6][1], tbs[6][2])
        if [t[0] for t in key] != [0x30, 0x03] or der[key[0][1] - 2 : key[0][2]] not in _KEYS:
            raise _Unusual
        if key[1][2] - key[1][1] < 2 or der[key[1][1]] != 0:
            raise _Unusual
        outer = _children(der, tbs[7][1], tbs[7][2])
        if len(outer) != 1 or outer[0][0] != 0x30:
            raise _Unusual
        self.extensions: dict[bytes, tuple[bool, bytes]] = {}
        for ext_tag, ext_start, ext_end in _children(der, outer[0][1], outer[0][2]):
            parts = _children(der, ext_start, ext_end) if ext_tag == 0x30 else []
            critical = len(parts) == 3 and der[parts[1][1] - 2 : parts[1][2]] == b"\x01\x01\xff"
            if [t[0] for t in parts] not in ([0x06, 0x04], [0x06, 0x01, 0x04]) or (
                len(parts) == 3 and not critical
            ):
                raise _Unusual  # a critical flag other than DER's TRUE (FALSE is left out)
            oid = der[parts[0][1] : parts[0][2]]
            if oid in self.extensions or oid not in _CHECK:
                raise _Unusual
            value = der[parts[-1][1] : parts[-1][2]]
            _CHECK[oid](value)
            self.extensions[oid] = (critical, value)

    def is_ca(self) -> bool:
        found = self.extensions.get(_BC)
        return found is not None and found[1] != b"\x30\x00"

    def usages(self) -> list[bytes] | None:
        found = self.extensions.get(_EKU)
        if found is None:
            return None
        value = found[1]
        _, start, end = _tlv(value, 0, len(value))
        return [value[pos:stop] for _, pos, stop in _children(value, start, end)]


_EC = "06072a8648ce3d0201"
_SIGNATURES = {  # ecdsa-with-SHA256/384/512 (no parameters), sha256/384/512WithRSAEncryption
    *(bytes.fromhex(f"300a06082a8648ce3d0403{n}") for n in ("02", "03", "04")),
    *(bytes.fromhex(f"300d06092a864886f70d01010{n}0500") for n in "bcd"),
}
_KEYS = {  # EC P-256, P-384, P-521 by name; RSA; Ed25519
    bytes.fromhex(f"3013{_EC}06082a8648ce3d030107"),
    bytes.fromhex(f"3010{_EC}06052b81040022"),
    bytes.fromhex(f"3010{_EC}06052b81040023"),
    bytes.fromhex("300d06092a864886f70d0101010500"),
    bytes.fromhex("300506032b6570"),
}
_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)


def _name(der: bytes, tag: int, start: int, end: int) -> None:
    """A Name: RDNs of one attribute each, an OID and a PrintableString or UTF8String."""
    if tag != 0x30:
        raise _Unusual
    for rdn_tag, rdn_start, rdn_end in _children(der, start, end):
        attributes = _children(der, rdn_start, rdn_end) if rdn_tag == 0x31 else []
        if len(attributes) != 1 or attributes[0][0] != 0x30:
            raise _Unusual
        parts = _children(der, attributes[0][1], attributes[0][2])
        if [t[0] for t in parts] not in ([0x06, 0x13], [0x06, 0x0C]):
            raise _Unusual
        _oid(der[parts[0][1] : parts[0][2]])
        value = der[parts[1][1] : parts[1][2]]
        if parts[1][0] == 0x13 and not _PRINTABLE.issuperset(value):
            raise _Unusual
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unusual from None


def _oid(content: bytes) -> None:
    """DER's OID rules: not empty, each arc ends with a byte below 0x80, none starts 0x80."""
    if not content or content[-1] & 0x80 or content[0] == 0x80:
        raise _Unusual
    if b"\x80" in content and any(
        content[i] == 0x80 and not content[i - 1] & 0x80 for i in range(1, len(content))
    ):
        raise _Unusual


def _time(der: bytes, tag: int, start: int, end: int) -> datetime:
    text = der[start:end]
    if _TIME_SIZES.get(tag) != len(text) or text[-1:] != b"Z" or not text[:-1].isdigit():
        raise _Unusual
    digits = text.decode("ascii")
    if tag == 0x17:
        digits = ("20" if digits < "50" else "19") + digits  # RFC 5280
    try:
        return datetime(
            int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
            int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise _Unusual from None


def _check_bc(value: bytes) -> None:
    if (
        value != b"\x30\x00"
        and value != b"\x30\x03\x01\x01\xff"
        and not (
            len(value) == 8 and value[:7] == b"\x30\x06\x01\x01\xff\x02\x01" and value[7] < 0x80
        )
    ):
        raise _Unusual  # CA:FALSE, CA:TRUE, or CA:TRUE with a pathlen below 128


def _check_ku(value: bytes) -> None:
    if not (len(value) in (4, 5) and value[0] == 0x03 and value[1] == len(value) - 2):
        raise _Unusual
    unused, last = value[2], value[-1]
    if unused > 7 or last & ((1 << unused) - 1) or not (last >> unused) & 1:
        raise _Unusual  # DER: unused bits zero, the last used bit set (no trailing zeros)


def _check_eku(value: bytes) -> None:
    tag, start, end = _tlv(value, 0, len(value))
    oids = _children(value, start, end) if tag == 0x30 and end == len(value) else []
    found = [value[s:e] for t, s, e in oids if t == 0x06]
    if not found or len(found) != len(oids) or len(set(found)) != len(found):
        raise _Unusual
    if any(oid not in (_SERVER_AUTH, _CLIENT_AUTH) for oid in found):
        raise _Unusual


def _check_ski(value: bytes) -> None:
    tag, _, end = _tlv(value, 0, len(value))
    if tag != 0x04 or end != len(value) or len(value) < 3:
        raise _Unusual


def _check_aki(value: bytes) -> None:
    tag, start, end = _tlv(value, 0, len(value))
    inner = _children(value, start, end) if tag == 0x30 and end == len(value) else []
    if len(inner) != 1 or inner[0][0] != 0x80 or inner[0][2] - inner[0][1] < 1:
        raise _Unusual  # keyid only, as openssl's authorityKeyIdentifier=keyid writes


def _check_san(value: bytes) -> None:
    tag, start, end = _tlv(value, 0, len(value))
    names = _children(value, start, end) if tag == 0x30 and end == len(value) else []
    if not names:
        raise _Unusual
    for kind, begin, stop in names:
        text = value[begin:stop]
        if kind == 0x82:  # dNSName: IA5String
            if not text or not text.isascii():
                raise _Unusual
        elif kind != 0x87 or len(text) not in (4, 16):  # iPAddress
            raise _Unusual


_CHECK = {
    _BC: _check_bc, _KU: _check_ku, _EKU: _check_eku,
    _SKI: _check_ski, _AKI: _check_aki, _SAN: _check_san,
}  # fmt: skip


def _shape(der: bytes) -> _Shape | None:
    try:
        return _Shape(der)
    except _Unusual:
        return None


class _CRLShape:
    """A CRL as `openssl ca -gencrl` writes it, read like _Shape: its signed part, issuer,
    serials and signature; _Unusual for anything cryptography might read otherwise."""

    def __init__(self, der: bytes) -> None:
        start, top, tbs = _signed(der)
        at = 0
        if tbs and tbs[0][0] == 0x02:
            if der[tbs[0][1] - 2 : tbs[0][2]] != b"\x02\x01\x01":
                raise _Unusual  # v2
            at = 1
        if len(tbs) < at + 3 or [t[0] for t in tbs[at : at + 2]] != [0x30, 0x30]:
            raise _Unusual
        self.algorithm = der[tbs[at][1] - 2 : tbs[at][2]]
        if self.algorithm not in _SIGNATURES or der[top[1][1] - 2 : top[1][2]] != self.algorithm:
            raise _Unusual
        _name(der, *tbs[at + 1])
        self.issuer = der[tbs[at][2] : tbs[at + 1][2]]  # the whole Name: from the algorithm's end
        rest = tbs[at + 2 :]
        this_update = _time(der, *rest.pop(0))
        next_update = _time(der, *rest.pop(0)) if rest and rest[0][0] in _TIME_SIZES else None
        self.times = (this_update, next_update)
        self.serials: set[int] = set()
        if rest and rest[0][0] == 0x30:
            for entry_tag, entry_start, entry_end in _children(der, *rest.pop(0)[1:]):
                parts = _children(der, entry_start, entry_end) if entry_tag == 0x30 else []
                if [t[0] for t in parts] not in ([0x02, 0x17], [0x02, 0x18], [0x02, 0x17, 0x30]):
                    raise _Unusual
                _time(der, *parts[1])
                if len(parts) == 3:
                    _extension_list(der, parts[2][1], parts[2][2])
                self.serials.add(_serial(der[parts[0][1] : parts[0][2]]))
        if rest and rest[0][0] == 0xA0:
            outer = _children(der, *rest.pop(0)[1:])
            if len(outer) != 1 or outer[0][0] != 0x30:
                raise _Unusual
            _extension_list(der, outer[0][1], outer[0][2])
        if rest:
            raise _Unusual
        self.signed = der[start : top[0][2]]  # tbsCertList, header included
        self.signature = der[top[2][1] + 1 : top[2][2]]


def _serial(content: bytes) -> int:
    if (
        not content
        or content[0] & 0x80
        or (len(content) > 1 and content[0] == 0 and content[1] < 0x80)
    ):
        raise _Unusual  # negative, or not DER's shortest
    return int.from_bytes(content, "big")


def _extension_list(der: bytes, start: int, end: int) -> None:
    """Extensions, by their structure (OID, DER's TRUE if critical, OCTET STRING)."""
    seen = set()
    for tag, ext_start, ext_end in _children(der, start, end):
        parts = _children(der, ext_start, ext_end) if tag == 0x30 else []
        if [t[0] for t in parts] not in ([0x06, 0x04], [0x06, 0x01, 0x04]):
            raise _Unusual
        if len(parts) == 3 and der[parts[1][1] - 2 : parts[1][2]] != b"\x01\x01\xff":
            raise _Unusual
        oid = der[parts[0][1] : parts[0][2]]
        _oid(oid)
        if oid in seen:
            raise _Unusual
        seen.add(oid)


# Above this size cryptography's own (Rust) parse of a CRL costs less than its import: the
# shortcut walks each revoked entry in Python (about 20 us each; 10,000 entries: 0.2 s).
_CRL_SHORTCUT_BYTES = 32_768


def _crl_shape(der: bytes) -> _CRLShape | None:
    if len(der) > _CRL_SHORTCUT_BYTES:
        return None
    try:
        return _CRLShape(der)
    except _Unusual:
        return None


def _verify(key_info: bytes, algorithm: bytes, signature: bytes, signed: bytes) -> bool | None:
    """Is SIGNATURE (by ALGORITHM, one of _SIGNATURES) over SIGNED valid for the key whose
    SubjectPublicKeyInfo content is KEY_INFO? None when this is not a pair known here."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    ecdsa = algorithm[4:11] == b"\x2a\x86\x48\xce\x3d\x04\x03"  # else sha*WithRSAEncryption
    digest = (hashes.SHA256, hashes.SHA384, hashes.SHA512)[
        algorithm[-1] - 2 if ecdsa else algorithm[-3] - 0x0B
    ]
    curves: dict[bytes, ec.EllipticCurve] = {
        b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07": ec.SECP256R1(),
        b"\x06\x05\x2b\x81\x04\x00\x22": ec.SECP384R1(),
        b"\x06\x05\x2b\x81\x04\x00\x23": ec.SECP521R1(),
    }
    try:
        _, start, end = _tlv(key_info, 0, len(key_info))
        key_algorithm = key_info[start - 2 : end]
        _, bits_start, bits_end = _tlv(key_info, end, len(key_info))
        raw = key_info[bits_start + 1 : bits_end]
        if ecdsa:
            curve = curves.get(key_algorithm[len(_EC) // 2 + 2 :])  # after ecPublicKey's OID
            if curve is None:
                return None
            ec_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)
            ec_key.verify(signature, signed, ec.ECDSA(digest()))
            return True
        if key_algorithm != bytes.fromhex("300d06092a864886f70d0101010500"):
            return None
        numbers = _children(raw, *_tlv(raw, 0, len(raw))[1:])
        if [t[0] for t in numbers] != [0x02, 0x02]:
            return None
        n, e = (_serial(raw[s:t]) for _, s, t in numbers)
        rsa.RSAPublicNumbers(e, n).public_key().verify(
            signature, signed, padding.PKCS1v15(), digest()
        )
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, _Unusual):
        return None


# ecPublicKey on a named curve, and the size of an uncompressed point on it
_EC_POINTS = {bytes.fromhex(f"30{n:02x}{_EC}{curve}"): size for n, curve, size in (
    (0x13, "06082a8648ce3d030107", 65), (0x10, "06052b81040022", 97), (0x10, "06052b81040023", 133),
)}  # fmt: skip
