"""Call an mTLS-protected URL with requests + requests-pkcs12 and a certwiz PKCS#12 bundle.

    CERTWIZ_P12_PASSPHRASE=... python examples/python/requests_p12.py URL BUNDLE.p12 CA.crt

The password comes from $CERTWIZ_P12_PASSPHRASE, else a prompt on a terminal, else
empty (a bundle made with `certwiz client issue -u`). Needs: pip install requests-pkcs12
"""

from __future__ import annotations

import getpass
import os
import sys

import requests_pkcs12


def password() -> str:
    if "CERTWIZ_P12_PASSPHRASE" in os.environ:
        return os.environ["CERTWIZ_P12_PASSPHRASE"]
    return getpass.getpass("Bundle password: ") if sys.stdin.isatty() else ""


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, p12, ca = sys.argv[1:]
    response = requests_pkcs12.get(
        url, pkcs12_filename=p12, pkcs12_password=password(), verify=ca, timeout=30
    )
    print(response.status_code)
    print(response.text)
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
