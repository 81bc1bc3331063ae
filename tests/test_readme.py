"""Every command the README shows can be pasted: shell syntax, and certwiz's own options.

The fenced blocks of README.md are read as a user would paste them: `console` blocks
give the lines after `$ `, `sh` blocks every line, `cron` blocks the command of each job,
`python` blocks their code. Each command must pass `bash -n`; each certwiz command in it
(also behind VAR=... or a shim in scripts/) must parse with certwiz's real command line:
no unknown option, no missing one, no stray word (which is what an unquoted
`--nginx-cmd nginx -p ...` gives). The block that drives a profile by hand runs here as
written; the install block and the cron line run for real in tests/test_install.py.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cryptography import x509

from certwiz.cli import app
from tests.conftest import REPO, clean_env

SHIMS = {
    "scripts/1_gen_ca.sh": ["ca", "init"],
    "scripts/2_gen_server_cert.sh": ["server", "issue"],
    "scripts/3_gen_client_cert.sh": ["client", "issue"],
    "scripts/4_revoke_client.sh": ["revoke"],
}
OPERATORS = {"&&", "||", "|", ";", "(", ")", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>&1", ">&", "<<", "<<<"}


@dataclass(frozen=True)
class Snippet:
    line: int  # where its block starts in README.md
    lang: str
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text.strip()[:120]}"


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M):
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2)))
    return blocks


def joined_lines(body: str) -> list[str]:
    """Lines with their `\\` continuations joined, as the shell reads them."""
    out: list[str] = []
    pending = ""
    for raw in body.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        out.append(pending + raw)
        pending = ""
    if pending:
        out.append(pending)
    return out


def commands(text: str) -> list[Snippet]:
    """Every pastable command of the README, and every python block."""
    found: list[Snippet] = []
    for start, lang, body in fenced_blocks(text):
        if lang == "console":
            for line in joined_lines(body):
                if line.startswith("$ "):
                    found.append(Snippet(start, lang, line[2:]))
        elif lang in ("sh", "bash"):
            found.append(Snippet(start, lang, body))
        elif lang == "cron":
            for line in body.splitlines():
                if line.strip() and not line.startswith("#") and not re.match(r"\w+=", line):
                    fields = line.split(None, 6)
                    assert len(fields) == 7, f"README.md:{start}: not a cron.d job: {line}"
                    found.append(Snippet(start, lang, fields[6]))
        elif lang == "python":
            found.append(Snippet(start, lang, body))
    return found


README = (REPO / "README.md").read_text()
SNIPPETS = commands(README)


def simple_commands(script: str) -> list[list[str]]:
    """The words of each simple command, without heredoc bodies, redirections, VAR=."""
    lines: list[str] = []
    heredoc: str | None = None
    for line in joined_lines(script):
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        found = re.search(r"<<-?\s*'?(\w+)'?", line)
        if found:
            heredoc = found.group(1)
        lines.append(line)
    result: list[list[str]] = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        skip_next = False
        for token in [*lexer, ";"]:
            if skip_next:
                skip_next = False
            elif token in OPERATORS or set(token) <= set(";&|()"):
                if words:
                    result.append(words)
                words = []
            elif token in REDIRECTS or (set(token) <= set("<>&0123456789") and "<" in token + ">"):
                skip_next = not token.endswith("&1")
            elif token.startswith("_CERTWIZ_COMPLETE="):
                words.append(token)  # a completion script, not parsed (test_startup.py runs it)
            elif not words and re.fullmatch(r"[A-Za-z_]\w*=.*", token):
                continue  # VAR=value before the command
            else:
                words.append(token)
        if words:
            result.append(words)
    return result


def certwiz_args(words: list[str]) -> list[str] | None:
    """The arguments certwiz gets from this command, or None when it is not certwiz."""
    if words and words[0] == "sudo":
        words = words[1:]
    if not words:
        return None
    if words[0] == "certwiz" or words[0].endswith("/bin/certwiz"):
        return words[1:]
    if words[0] in SHIMS:
        return [*SHIMS[words[0]], *words[1:]]
    return None


def parse_certwiz(args: list[str], root: Any = None) -> None:
    """Parse like `certwiz ARGS` would, without running anything; raise on a usage error.

    ROOT: a click group built once from the app, to parse many lines with (faster).
    """
    command = root if root is not None else typer.main.get_command(app)
    name, rest, parent = "certwiz", list(args), None
    with contextlib.redirect_stdout(io.StringIO()):
        while True:
            try:
                ctx = command.make_context(name, rest, parent=parent)
            except Exception as exc:
                if type(exc).__name__ == "Exit" and getattr(exc, "exit_code", 1) == 0:
                    return  # --help / --version
                raise
            if not hasattr(command, "commands"):
                return
            protected = getattr(ctx, "_protected_args", None)
            if protected is None:
                protected = ctx.protected_args
            name, command, rest = command.resolve_command(ctx, [*protected, *ctx.args])
            parent = ctx


def test_readme_has_commands_of_every_kind() -> None:
    kinds = {s.lang for s in SNIPPETS}
    assert {"console", "sh", "cron", "python"} <= kinds
    certwiz_lines = [
        args
        for s in SNIPPETS
        if s.lang != "python"
        for words in simple_commands(s.text)
        if (args := certwiz_args(words)) is not None
    ]
    assert len(certwiz_lines) > 15


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_readme_command_can_be_pasted(snippet: Snippet) -> None:
    if snippet.lang == "python":
        ast.parse(snippet.text)
        return
    syntax = subprocess.run(["bash", "-n"], input=snippet.text, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{snippet}\n{syntax.stderr}"
    for words in simple_commands(snippet.text):
        args = certwiz_args(words)
        if args is None:
            continue
        try:
            parse_certwiz(args)
        except Exception as exc:
            message = getattr(exc, "format_message", lambda e=exc: str(e))()
            pytest.fail(f"{snippet}\ncertwiz {shlex.join(args)}\n-> {message}")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "certwiz revoke -p a -n b --reload --nginx-cmd /usr/sbin/nginx -p /x -c /y",
            "No such option: -c",
        ),
        (
            "certwiz nginx render -p a --server s --upstream http://u [--listen 443]",
            "unexpected extra argument",
        ),
        ("CERTWIZ_HOME=/x certwiz crl gen --reload", "Missing option"),
        ("scripts/4_revoke_client.sh -p a -n b --colour", "No such option"),
    ],
)
def test_the_check_catches_a_broken_command(line: str, error: str) -> None:
    (words,) = simple_commands(line)
    args = certwiz_args(words)
    assert args is not None
    with pytest.raises(Exception) as caught:
        parse_certwiz(args)
    assert error in caught.value.format_message()  # type: ignore[attr-defined]


def test_quoted_nginx_cmd_parses_and_heredocs_are_skipped() -> None:
    parse_certwiz(
        certwiz_args(
            simple_commands(
                "certwiz revoke -p a -n b --reload --nginx-cmd '/usr/sbin/nginx -p /x'"
            )[0]
        )
        or []
    )
    script = "curl -K - https://x/ <<EOF\ncert = certwiz --bogus\nEOF\ncertwiz list -p a >/dev/null"
    assert simple_commands(script) == [
        ["curl", "-K", "-", "https://x/"],
        ["certwiz", "list", "-p", "a"],
    ]


def test_demo_prints_commands_that_paste_back_to_the_same_words() -> None:
    """The README's transcript comes from `make demo`: its `$ ` lines must be quoted."""
    words = ["--nginx-cmd", "/usr/sbin/nginx -p /x -c /x/nginx.conf", "HTTP %{http_code}\\n",
             "it's", "plain-word", "bot-01.p12:", ""]  # fmt: skip
    script = (
        "eval \"$(sed -n '/^shown()/,/^}/p' examples/demo.sh)\"\n"
        'line=$(shown "$@")\nprintf "%s\\n" "$line"\n'
        'eval "set -- $line"\nprintf "%s\\0" "$@"'
    )
    done = subprocess.run(
        ["bash", "-c", script, "demo", *words], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    shown, _, back = done.stdout.partition("\n")
    assert back.split("\0")[:-1] == words
    assert "'/usr/sbin/nginx -p /x -c /x/nginx.conf'" in shown
    assert " plain-word bot-01.p12: " in shown


def test_readme_states_the_defaults_the_code_uses() -> None:
    from certwiz.cli.prompts import PROMPT_TRIES
    from certwiz.issue import DEFAULT_LEAF_DAYS
    from certwiz.passphrase import MIN_LENGTH

    text = " ".join(README.split())
    assert text.count(f"valid {DEFAULT_LEAF_DAYS} days unless `-d`") == 2  # server, client
    assert f"at least {MIN_LENGTH} characters" in text
    assert {3: "three"}[PROMPT_TRIES] + " tries in all" in text


def console_block(heading: str) -> list[str]:
    """The `$ ` commands of the first console block after `heading`."""
    start = README.index(f"\n{heading}\n")
    found = re.compile(r"^```console\n(.*?)^```$", re.S | re.M).search(README, start)
    assert found is not None
    return [line[2:] for line in joined_lines(found.group(1)) if line.startswith("$ ")]


def test_driving_by_hand_block_runs_as_written(tmp_path: Path) -> None:
    """The README's hand-run openssl block, pasted into a shell beside ./certs/my-app."""
    empty = tmp_path / "no-config"
    empty.write_text("")
    env = clean_env()
    env["CERTWIZ_CONFIG"] = str(empty)  # the default home: ./certs of the shell's directory
    env["PATH"] = f"{REPO / '.venv/bin'}:{Path(sys.executable).parent}:{env['PATH']}"
    shell = tmp_path / "shell"
    shell.mkdir()

    def run(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", line],
            cwd=shell, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    for setup in ("certwiz ca init -p my-app", "certwiz client issue -p my-app -n bot-02 -u"):
        assert run(setup).returncode == 0
    outputs = []
    for line in console_block("## Driving the profile by hand with `openssl ca`"):
        done = run(line)
        assert done.returncode == 0, f"$ {line}\n{done.stderr}"
        outputs.append(done.stdout)
    listing = next(out for out in outputs if out.startswith("NAME"))
    (bot,) = [row for row in listing.splitlines() if row.startswith("bot-02")]
    assert "revoked" in bot and "keyCompromise" in bot
    crl = x509.load_pem_x509_crl((shell / "certs/my-app/crl.pem").read_bytes())
    handmade = x509.load_pem_x509_certificate((shell / "handmade.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(handmade.serial_number) is not None
