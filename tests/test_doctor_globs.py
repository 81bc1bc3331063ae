"""doctor expands `include` globs to the files nginx loads (attack round 11, F2).

nginx hands an include pattern to glibc's glob(3) (flags 0, C locale); doctor used
Python's glob, which reads `[^_]` as the set {^, _}: `include sites/[^_]*.conf;` made
doctor read the disabled `_k-mtls.conf` while nginx loaded `app.conf`. Each pattern of
the table is included by a real nginx (`nginx -T` lists every file it loaded, in
order) and by doctor's reader: both must load exactly the expected files, in order.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from certwiz.doctor import conf as doctor_conf
from certwiz.errors import InputError
from tests.nginx_support import require_nginx

pytestmark = pytest.mark.nginx

NAMES = ["a", "B", "_k", ".h", "^x", "!y", "]z", "-m", "[x]", "c\\d", "é"]

# pattern (from the prefix) -> the files nginx loads, in its order
TABLE: dict[str, list[str]] = {
    # byte order, hidden names left out; é (two bytes) last
    "d/*.conf": ["!y", "-m", "B", "[x]", "]z", "^x", "_k", "a", "c\\d", "é"],
    "d/[^_]*.conf": ["!y", "-m", "B", "[x]", "]z", "^x", "a", "c\\d", "é"],  # "not _"
    "d/[!_]*.conf": ["!y", "-m", "B", "[x]", "]z", "^x", "a", "c\\d", "é"],
    "d/[_^]*.conf": ["^x", "_k"],  # ^ not first: a member
    "d/[]]z.conf": ["]z"],  # ] first: a member
    "d/[!]]*.conf": ["!y", "-m", "B", "[x]", "^x", "_k", "a", "c\\d", "é"],
    "d/[\\]]z.conf": ["]z"],  # \ escapes inside a set
    "d/[\\!]y.conf": ["!y"],
    "d/\\[x].conf": ["[x]"],  # \[ is a plain [
    "d/[*.conf": ["[x]"],  # an unclosed [ is a plain [
    "d/*\\.conf": ["!y", "-m", "B", "[x]", "]z", "^x", "_k", "a", "c\\d", "é"],
    "d/c\\\\d*.conf": [],  # the config's \\ is one \, which escapes d: "cd*"
    "d/[a-c]*.conf": ["a", "c\\d"],  # byte range: not B
    "d/[[:upper:]]*.conf": ["B"],
    "d/[[:nosuch:]]*.conf": [],  # an unknown class matches nothing
    "d/??.conf": ["!y", "-m", "]z", "^x", "_k", "é"],  # ? is one byte
    "d/.*.conf": [".h"],
    "d/[.]h.conf": [],  # a leading dot only by a literal dot
    "d/?h.conf": [],
    "d/*/*.conf": ["sub/s"],  # not .hd
}
# `.*` also matches `.` and `..`; the whole list is sorted: ../ before ./ before .hd/
TABLE["d/.*/*.conf"] = ["../top"] + [f"./{n}" for n in TABLE["d/*.conf"]] + [".hd/t"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PREFIX/w/d with one file per name, sub/ and .hd/, and w/top.conf."""
    prefix = tmp_path_factory.mktemp("globs")
    d = prefix / "w" / "d"
    (d / "sub").mkdir(parents=True)
    (d / ".hd").mkdir()
    for name in NAMES:
        (d / f"{name}.conf").write_text(f"# {name}\n")
    (d / "sub" / "s.conf").write_text("#\n")
    (d / ".hd" / "t.conf").write_text("#\n")
    (prefix / "w" / "top.conf").write_text("#\n")
    return prefix


def nginx_loads(prefix: Path, pattern: str) -> list[str]:
    """The files `nginx -T` loads for `include PATTERN;` in http { }, in order."""
    main = prefix / "nginx.conf"
    main.write_text(f"events {{}}\nhttp {{\n    include {pattern};\n}}\n")
    done = subprocess.run(
        [require_nginx(), "-T", "-p", str(prefix), "-c", str(main), "-g",
         f"error_log stderr; pid {prefix}/nginx.pid;"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = re.findall(rb"^# configuration file (.*):$", done.stdout, re.M)
    return [p.decode() for p in loaded[1:]]  # after nginx.conf itself


def doctor_loads(prefix: Path) -> list[str]:
    reader = doctor_conf.Reader(prefix)
    reader.parse_file(prefix / "nginx.conf")
    return [str(p) for p in reader.files[1:]]


def rel(prefix: Path, loaded: list[str]) -> list[str]:
    base = f"{prefix}/w/d/"
    return [p.removeprefix(base).removesuffix(".conf") for p in loaded]


@pytest.mark.parametrize("pattern", list(TABLE))
def test_a_glob_loads_what_nginx_loads(tree: Path, pattern: str) -> None:
    full = f"w/{pattern}"
    by_nginx = nginx_loads(tree, full)
    assert rel(tree, by_nginx) == TABLE[pattern]
    by_doctor = doctor_loads(tree)
    assert [Path(p) for p in by_doctor] == [Path(p) for p in by_nginx]  # same files, same order


def test_a_directory_that_matches_fails_in_nginx_and_doctor(tree: Path) -> None:
    main = tree / "nginx.conf"
    main.write_text("events {}\nhttp {\n    include w/d/su*;\n}\n")
    checked = subprocess.run(
        [require_nginx(), "-t", "-p", str(tree), "-c", str(main), "-g",
         f"error_log stderr; pid {tree}/nginx.pid;"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode != 0 and "Is a directory" in checked.stderr
    with pytest.raises(InputError, match="is a directory"):
        doctor_loads(tree)


@pytest.mark.parametrize("pattern", [b"w/d/[[.a.]]*.conf", b"w/latin/caf\xe9*.conf"])
def test_a_glob_doctor_cannot_read_exactly_is_refused_not_guessed(
    tree: Path, pattern: bytes
) -> None:
    """A collating symbol; a Latin-1 name (nginx globs the bytes, doctor read U+FFFD)."""
    (tree / "w" / "latin").mkdir(exist_ok=True)  # not in d/: the table's files stay
    (tree / "w" / "latin" / os.fsdecode(b"caf\xe9.conf")).touch()
    main = tree / "nginx.conf"
    main.write_bytes(b"events {}\nhttp {\n    include " + pattern + b";\n}\n")
    with pytest.raises(InputError, match=r"nginx-conf: .*:3: include .*cannot expand"):
        doctor_loads(tree)
