#!/usr/bin/env bash
# Create or reuse Cascade's virtual environment outside the clone (torch alone is several GB), and install
# what pyproject.toml asks for whenever it (or the checkout's path, for the editable install) changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${CASCADE_VENV:-$HOME/.cache/cascade/venv}
key="$(sha256sum "$root/pyproject.toml" | cut -c1-16) $root"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
if [ "$(cat "$venv/.cascade-stamp" 2>/dev/null)" != "$key" ]; then
  echo "installing Cascade and its dependencies into $venv (first time: several GB, cached afterwards)"
  "$venv/bin/pip" install --quiet --progress-bar off -e "$root[dev]"
  echo "$key" > "$venv/.cascade-stamp"
fi
