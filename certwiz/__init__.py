"""certwiz: a small private CA for mutual TLS on top of the openssl binary.

The library is usable on its own, through `certwiz.api.CA` (imported from there,
so that `import certwiz` stays light for the command line)::

    from certwiz.api import CA
    ca = CA.create("my-app", home="certs").ca
    ca.issue_client("bot-01", unencrypted=True)
"""

__version__ = "0.1.0"  # the one place; pyproject.toml reads it

from .errors import CertwizError, InputError, OpenSSLError, StateError
from .profile import Profile, open_profile

__all__ = [
    "CertwizError",
    "InputError",
    "OpenSSLError",
    "Profile",
    "StateError",
    "__version__",
    "open_profile",
]
