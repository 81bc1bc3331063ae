#!/usr/bin/env bash
# Step 2: a server certificate. Usage: 2_gen_server_cert.sh -p PROFILE -n NAME [-d DAYS] [--san V]
set -euo pipefail
source "$(dirname "$0")/_certwiz.sh"
exec "$certwiz" server issue "$@"
