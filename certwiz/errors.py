"""The exceptions certwiz raises; each carries the exit code the CLI uses."""

from __future__ import annotations


class CertwizError(Exception):
    """Base of every error certwiz reports to a user as one line."""

    exit_code = 1


class InputError(CertwizError):
    """A value given by the user breaks a rule; nothing was written."""

    exit_code = 2

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class StateError(CertwizError):
    """The request does not fit the profile's state (no CA, already issued, ...)."""

    exit_code = 2


class OpenSSLError(CertwizError):
    """`openssl` exited non-zero; the message holds its most telling line."""

    def __init__(self, command: str, detail: str, returncode: int, stderr: str = "") -> None:
        super().__init__(f"openssl {command} failed: {detail}")
        self.command = command
        self.detail = detail
        self.returncode = returncode
        self.stderr = stderr  # all of it, for callers that tell failures apart


class LockTimeout(CertwizError):
    """Another certwiz process held the profile's lock for too long."""

    exit_code = 3


class RefusedByServer(CertwizError):
    """A server (the EST service, or NGINX before it) answered 4xx: retrying will not help.

    Its own code, so a timer tells "try again later" (1) from "enroll again" (5).
    """

    exit_code = 5
