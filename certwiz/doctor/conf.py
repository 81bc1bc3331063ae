"""Read an NGINX configuration the way nginx does: tokens, blocks and `include`s.

Only what `certwiz doctor` needs: every directive with its arguments and the
file and line it came from, `include`s spliced in where they stand (globs
expanded and sorted as nginx's glob(3) does: globbing.py; relative paths taken
from nginx's configuration prefix, the directory of the main file unless told
otherwise), and the values a location inherits from its server and the http block.
It never runs nginx and never writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from . import globbing

MAX_INCLUDE_DEPTH = 32
MAX_FILES = 2000
MAX_FILE_BYTES = 8 * 1024 * 1024
_GLOB_CHARS = re.compile(r"[*?\[]")
# Blocks whose body is not nginx syntax (embedded Lua, ...): skipped whole.
_RAW_BLOCK = re.compile(r".*_by_lua_block$")


@dataclass
class Directive:
    """`name args...;` or `name args... { block }`, with where it was written."""

    name: str
    args: list[str]
    file: Path
    line: int
    block: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> tuple[str, int]:
        return str(self.file), self.line

    def children(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def first(self, name: str) -> Directive | None:
        found = self.children(name)
        return found[-1] if found else None

    def walk(self) -> Iterator[Directive]:
        for child in self.block or []:
            yield child
            yield from child.walk()

    def chain(self) -> list[Directive]:
        """This block and every block around it, innermost first."""
        out: list[Directive] = []
        node: Directive | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def inherited(self, name: str) -> Directive | None:
        """The directive NAME in effect here: the innermost block that sets it."""
        for block in self.chain():
            found = block.first(name)
            if found is not None:
                return found
        return None

    def inherited_all(self, name: str) -> list[Directive]:
        """Array directives (proxy_set_header, add_header...): nginx takes the
        innermost level that has any and ignores every outer one."""
        for block in self.chain():
            found = block.children(name)
            if found:
                return found
        return []


@dataclass
class Tokens:
    file: Path
    items: list[tuple[str, int, bool]]  # (text, line, quoted)


def _error(path: Path, line: int, rule: str) -> InputError:
    return InputError("nginx-conf", f"{path}:{line}: {rule}")


_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _unescape(raw: str) -> str:
    """What nginx stores for a token: \\" \\' \\\\ \\t \\r \\n decoded, other backslashes kept."""
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPES:
            out.append(_ESCAPES[raw[i + 1]])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def tokenize(text: str, path: Path) -> list[tuple[str, int, bool]]:
    """nginx's lexer (ngx_conf_read_token): words, quoted strings, `;`, `{`, `}`, `#`.

    As in nginx, a quote or `#` has its meaning only at the start of a token: inside a
    word they are plain characters (`it's` is one word, and what follows is not a
    string), a word ends only at white space, `;` or `{` (`}` inside it is plain, `${`
    opens a variable), and a closing quote must be followed by white space, `;`, `{`
    or `)`. Reading it any other way would let a config hide a directive from doctor.
    """
    tokens: list[tuple[str, int, bool]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            tokens.append((ch, line, False))
            i += 1
        elif ch in "\"'":
            start_line, i = line, i + 1
            start = i
            while True:
                if i >= n:
                    raise _error(path, start_line, f"unterminated {ch} string")
                c = text[i]
                if c == "\n":
                    line += 1
                if c == "\\" and i + 1 < n:
                    line += text[i + 1] == "\n"
                    i += 2
                    continue
                if c == ch:
                    break
                i += 1
            tokens.append((_unescape(text[start:i]), start_line, True))
            i += 1
            if i < n and text[i] not in " \t\r\n;{)":
                raise _error(path, line, f"unexpected {text[i]!r} after a quoted string")
        else:
            start_line, start, variable = line, i, False
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    line += text[i + 1] == "\n"
                    i += 2
                    variable = False
                    continue
                if c == "{" and variable:  # ${name}
                    i += 1
                    continue
                variable = c == "$"
                if c in " \t\r\n;{":
                    break
                i += 1
            tokens.append((_unescape(text[start:i]), start_line, False))
    return tokens


class Reader:
    """Parses a configuration and its includes; `prefix` resolves relative paths."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.files: list[Path] = []
        self.relative: list[tuple[Path, int, str]] = []  # includes resolved from prefix

    def _read(self, path: Path) -> str:
        try:
            with open(path, "rb") as handle:  # bounded: /dev/zero is not a file size
                data = handle.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise _error(path, 0, f"larger than {MAX_FILE_BYTES} bytes")
            return data.decode("utf-8", errors="replace")
        except FileNotFoundError:
            raise InputError("nginx-conf", f"{path} does not exist") from None
        except IsADirectoryError:
            raise InputError("nginx-conf", f"{path} is a directory, not a file") from None
        except PermissionError:
            raise InputError("nginx-conf", f"{path} is not readable") from None

    def parse_file(self, path: Path, depth: int = 0) -> list[Directive]:
        if depth > MAX_INCLUDE_DEPTH:
            raise _error(path, 0, f"includes nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)")
        if len(self.files) >= MAX_FILES:
            raise _error(path, 0, f"more than {MAX_FILES} files included")
        self.files.append(path)
        tokens = tokenize(self._read(path), path)
        _, body = self._block(tokens, 0, path, depth, top=True)
        return body

    def _block(
        self, tokens: list[tuple[str, int, bool]], pos: int, path: Path, depth: int, top: bool
    ) -> tuple[int, list[Directive]]:
        body: list[Directive] = []
        words: list[tuple[str, int, bool]] = []
        while pos < len(tokens):
            text, line, quoted = tokens[pos]
            pos += 1
            if quoted or text not in ";{}":
                words.append((text, line, quoted))
                continue
            if text == "}":
                if words:
                    raise _error(path, line, 'unexpected "}"')
                if top:
                    raise _error(path, line, 'unexpected "}"')
                return pos, body
            if not words:
                raise _error(path, line, f'unexpected "{text}"')
            name, first_line = words[0][0], words[0][1]
            args = [w[0] for w in words[1:]]
            words = []
            if text == ";":
                if name == "include":
                    body.extend(self._include(args, path, first_line, depth))
                else:
                    body.append(Directive(name, args, path, first_line))
                continue
            # a block
            if _RAW_BLOCK.fullmatch(name):
                pos = _skip_raw(tokens, pos, path, first_line)
                body.append(Directive(name, args, path, first_line, []))
                continue
            pos, inner = self._block(tokens, pos, path, depth, top=False)
            body.append(Directive(name, args, path, first_line, inner))
        if words:
            raise _error(path, words[-1][1], 'unexpected end of file, expecting ";" or "}"')
        if not top:
            raise _error(path, tokens[-1][1] if tokens else 0, 'unexpected end of file, "}"')
        return pos, body

    def resolve(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.prefix / path

    def _include(self, args: list[str], path: Path, line: int, depth: int) -> list[Directive]:
        if len(args) != 1:
            raise _error(path, line, "include takes exactly one argument")
        target = self.resolve(args[0])
        if not Path(args[0]).is_absolute():
            self.relative.append((path, line, args[0]))
        # as nginx: glob(3) of the prefixed name, every match read (a directory is an error)
        pattern = args[0] if Path(args[0]).is_absolute() else f"{self.prefix}/{args[0]}"
        if _GLOB_CHARS.search(pattern):
            try:
                files = globbing.expand(pattern)
            except globbing.Unsupported as exc:
                raise _error(path, line, f"include {args[0]}: doctor cannot expand {exc}") from None
        else:
            if not target.is_file():
                raise _error(path, line, f"include {target}: no such file")
            files = [target]
        out: list[Directive] = []
        for file in files:
            out.extend(self.parse_file(file, depth + 1))
        return out


def _skip_raw(tokens: list[tuple[str, int, bool]], pos: int, path: Path, line: int) -> int:
    level = 1
    while pos < len(tokens):
        text, _, quoted = tokens[pos]
        pos += 1
        if not quoted and text == "{":
            level += 1
        elif not quoted and text == "}":
            level -= 1
            if level == 0:
                return pos
    raise _error(path, line, "unterminated block")


def _link(block: Directive) -> None:
    for child in block.block or []:
        child.parent = block
        _link(child)


def load(path: Path, prefix: Path | None = None) -> Directive:
    """The whole configuration as one root block (name "main")."""
    path = path.expanduser().absolute()
    reader = Reader((prefix or path.parent).expanduser().absolute())
    root = Directive("main", [], path, 0, reader.parse_file(path))
    if prefix is None and reader.relative and not root.children("http"):
        # A site file is included by an nginx.conf elsewhere, and nginx resolves its
        # relative includes from that file's directory, which is unknown here: guessing
        # this file's own directory could read another file than nginx does.
        where, line, value = reader.relative[0]
        raise _error(
            where,
            line,
            f"include {value}: a relative include in a site file; nginx resolves it from "
            "the directory of the main nginx.conf: give that file as --nginx-conf, or "
            "that directory as --nginx-prefix",
        )
    _link(root)
    return root


def ssl_crl(server: Directive) -> Directive | None:
    """The ssl_crl nginx checks SERVER's client chains against, or None: none set, or
    `ssl_crl "";` (nginx reads an empty name as no CRL, and it clears one set at an outer
    level), so such a server without OCSP checks no revocation at all."""
    found = server.inherited("ssl_crl")
    return found if found is not None and found.args and found.args[0] else None


def servers(root: Directive) -> list[Directive]:
    """The http `server` blocks (a file with no http block counts as one: a site file)."""
    out: list[Directive] = []

    def visit(block: Directive, in_http: bool) -> None:
        for child in block.block or []:
            if child.name == "http":
                visit(child, True)
            elif child.name == "server" and child.block is not None and in_http:
                out.append(child)
            elif child.name in ("stream", "mail", "upstream", "events", "types", "map"):
                continue
            elif child.block is not None and child.name not in ("server", "location"):
                visit(child, in_http)

    top_has_http = any(child.name == "http" for child in root.walk())
    visit(root, not top_has_http)
    return out


def locations(server: Directive) -> list[Directive]:
    """Every location (nested ones too) of a server."""
    return [d for d in server.walk() if d.name == "location" and d.block is not None]
