"""`include` globs expanded to the files nginx loads, in nginx's order.

nginx on Linux hands the pattern to glibc's glob(3) with no flags (ngx_open_glob), and
nginx never calls setlocale, so the C locale applies. Python's glob module reads the
same pattern another way (`[^_]` is the set {^, _} there, "not _" here; `\\[` is no
escape there), and a config could then load one file in nginx and another in doctor.
What this matcher does, each rule checked against `nginx -T` on Debian 12
(tests/test_doctor_globs.py):

- `*` any bytes, `?` one byte (C locale: `?` does not match the two bytes of `é`);
- `[...]` a set, `[!...]` and `[^...]` its complement, `]` first is a member, `a-c` a
  byte range, `[:upper:]` and the other C-locale classes (an unknown class matches
  nothing), `\\` escapes inside and outside a set, an unclosed `[` is a plain `[`, a
  trailing `\\` matches nothing;
- a name that starts with `.` is matched only by a pattern that starts with a literal
  `.` (not `*`, `?` or `[.]`), and `.*` also matches `.` and `..`;
- a component without `*`, `?` or a `[...]` pair is a literal name (backslashes removed);
- the matches sorted as bytes (strcoll in the C locale), over the whole path;
- whatever matches is returned, directories too: nginx then fails to read them, and so
  does doctor.

Written here rather than calling glob(3) through ctypes: glob_t's layout differs between
C libraries (glibc, musl, the BSDs), and doctor must read a Linux nginx's config the way
that nginx does wherever it runs. Collating symbols and equivalence classes (`[[.a.]]`,
`[[=a=]]`), and a pattern with bytes that are not UTF-8 (doctor reads the config as
UTF-8), are refused: doctor would have to guess, and could miss a file nginx loads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NEVER = re.compile(rb"(?!)")
_RANGE_C = range(128)
CLASSES: dict[bytes, frozenset[int]] = {
    b"alpha": frozenset(c for c in _RANGE_C if bytes([c]).isalpha()),
    b"digit": frozenset(c for c in _RANGE_C if bytes([c]).isdigit()),
    b"alnum": frozenset(c for c in _RANGE_C if bytes([c]).isalnum()),
    b"upper": frozenset(c for c in _RANGE_C if bytes([c]).isupper()),
    b"lower": frozenset(c for c in _RANGE_C if bytes([c]).islower()),
    b"space": frozenset(b" \t\n\v\f\r"),
    b"blank": frozenset(b" \t"),
    b"punct": frozenset(c for c in range(33, 127) if not bytes([c]).isalnum()),
    b"print": frozenset(range(32, 127)),
    b"graph": frozenset(range(33, 127)),
    b"cntrl": frozenset([*range(32), 127]),
    b"xdigit": frozenset(b"0123456789abcdefABCDEF"),
}


class Unsupported(ValueError):
    """A pattern doctor cannot expand exactly as glob(3) would."""


def has_magic(component: bytes) -> bool:
    """glibc's __glob_pattern_type: `*` or `?`, or a `[` with a `]` after it
    (backslash-escaped characters do not count)."""
    bracket, i = False, 0
    while i < len(component):
        c = component[i : i + 1]
        if c in (b"*", b"?"):
            return True
        if c == b"\\":
            i += 1
        elif c == b"[":
            bracket = True
        elif c == b"]" and bracket:
            return True
        i += 1
    return False


def _unescape(component: bytes) -> bytes:
    return re.sub(rb"\\(.)", rb"\1", component, flags=re.S)


def _bracket(pattern: bytes, i: int) -> tuple[bytes, int] | None:
    """The set that starts after `[` at I, as a regex, and where it ends; None when it
    is not closed (the `[` is then a plain character)."""
    n = len(pattern)
    negate = i < n and pattern[i] in b"!^"
    i += negate
    members: set[int] = set()
    first = True
    while True:
        if i >= n:
            return None
        c = pattern[i]
        if c == ord("]") and not first:
            i += 1
            break
        first = False
        if c == ord("[") and pattern[i + 1 : i + 2] in (b".", b"="):
            raise Unsupported("collating symbols and equivalence classes ([[.x.]], [[=x=]])")
        if c == ord("[") and pattern[i + 1 : i + 2] == b":":
            end = pattern.find(b":]", i + 2)
            if end < 0:
                return None
            name = pattern[i + 2 : end]
            if name not in CLASSES:
                return _NEVER.pattern, n  # glibc: an unknown class matches nothing
            members |= CLASSES[name]
            i = end + 2
            continue
        if c == ord("\\"):
            i += 1
            if i >= n:
                return None
            c = pattern[i]
        i += 1
        if pattern[i : i + 1] == b"-" and i + 1 < n and pattern[i + 1] != ord("]"):
            high = pattern[i + 1]
            i += 2
            if high == ord("\\") and i < n:
                high = pattern[i]
                i += 1
            members |= set(range(c, high + 1))
        else:
            members.add(c)
    body = b"".join(b"\\x%02x" % c for c in sorted(members))
    if not body:
        return (b"[\\x00-\\xff]" if negate else _NEVER.pattern), i
    return b"[" + (b"^" if negate else b"") + body + b"]", i


def compile_component(pattern: bytes) -> re.Pattern[bytes]:
    """fnmatch(3) with FNM_PERIOD (glob's flags 0), C locale, as a bytes regex."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"\\":
            if i + 1 == n:
                return _NEVER  # a trailing backslash matches nothing
            out.append(re.escape(pattern[i + 1 : i + 2]))
            i += 2
        elif c == b"*":
            out.append(b".*")
            i += 1
        elif c == b"?":
            out.append(b".")
            i += 1
        elif c == b"[":
            found = _bracket(pattern, i + 1)
            if found is None:
                out.append(re.escape(c))
                i += 1
            else:
                regex, i = found
                out.append(regex)
        else:
            out.append(re.escape(c))
            i += 1
    # FNM_PERIOD: a leading dot only by a literal dot
    lead = b"" if pattern.startswith((b".", b"\\.")) else b"(?!\\.)"
    return re.compile(lead + b"".join(out), re.S)


def expand(pattern: str) -> list[Path]:
    """The paths glob(3) returns for PATTERN with flags 0, sorted as nginx gets them."""
    if "\ufffd" in pattern:  # conf.py read bytes that are not UTF-8: not nginx's bytes
        raise Unsupported("a pattern with bytes that are not UTF-8")
    raw = os.fsencode(pattern)
    found = [b"/" if raw.startswith(b"/") else b""]
    for component in [c for c in raw.split(b"/") if c]:
        step: list[bytes] = []
        if not has_magic(component):
            name = _unescape(component)
            step = [base + name for base in found]
        else:
            regex = compile_component(component)
            for base in found:
                try:
                    names = os.listdir(base or b".")
                except OSError:
                    continue  # not a directory, or not readable: glob skips it too
                step += [base + name for name in [b".", b"..", *names] if regex.fullmatch(name)]
        found = [path + b"/" for path in step]
    matches = [path[:-1] for path in found if os.path.lexists(path[:-1])]
    return [Path(os.fsdecode(path)) for path in sorted(matches)]
