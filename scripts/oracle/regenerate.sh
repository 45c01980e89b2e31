#!/usr/bin/env bash
# Regenerates data/oracle/transformers-<version>/ from transformers itself (see README.md here).
# Not run by CI: it needs torch (about 6 GB installed) and takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-oracle
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet -r scripts/oracle/requirements.txt
exec "$venv/bin/python" scripts/oracle/oracle.py "$@"
