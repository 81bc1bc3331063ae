#!/usr/bin/env bash
# Step 1: create a profile (its own CA). Usage: 1_gen_ca.sh -p PROFILE [certwiz ca init options]
set -euo pipefail
source "$(dirname "$0")/_certwiz.sh"
exec "$certwiz" ca init "$@"
