# Sourced by the numbered shims: run certwiz from the repository's venv if there
# is one, else from PATH. No logic beyond finding the command.
# CDPATH= and >/dev/null: a CDPATH in the environment would send a relative cd elsewhere
# (and make it print the directory, a second line in $here).
here=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." >/dev/null && pwd)
if [ -x "$here/.venv/bin/certwiz" ]; then certwiz="$here/.venv/bin/certwiz"; else certwiz=certwiz; fi
