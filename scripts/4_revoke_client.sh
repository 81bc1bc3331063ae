#!/usr/bin/env bash
# Step 4: revoke by name and regenerate the CRL. Usage: 4_revoke_client.sh -p PROFILE -n NAME [--reason R]
set -euo pipefail
source "$(dirname "$0")/_certwiz.sh"
exec "$certwiz" revoke "$@"
