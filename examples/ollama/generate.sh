#!/usr/bin/env bash
# Ask the Ollama behind the mTLS proxy for a completion with a certwiz bot bundle.
# Usage: examples/ollama/generate.sh https://ollama.example.com bot.p12 ca.crt [MODEL] [PROMPT]
# Bundle made with `certwiz client issue -u` (no password); for a password see ../curl/p12.sh.
set -euo pipefail
base=$1 p12=$2 ca=$3 model=${4:-llama3.2} prompt=${5:-Why is the sky blue?}
body=$(python3 -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "prompt": sys.argv[2], "stream": False}))' "$model" "$prompt")
exec curl -sS --fail-with-body --cert-type P12 --cert "$p12:" --cacert "$ca" \
    -H 'Content-Type: application/json' --data-binary "$body" "$base/api/generate"
