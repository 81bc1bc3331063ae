# Sourced by the numbered shims: run certwiz from the repository's venv if there
# is one, else from PATH. No logic beyond finding the command.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$here/.venv/bin/certwiz" ]; then certwiz="$here/.venv/bin/certwiz"; else certwiz=certwiz; fi
