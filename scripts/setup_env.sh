# Sourced by the other scripts: makes ./.venv (once) and installs keras_zoo with the given extra.
# Usage: source scripts/setup_env.sh EXTRA
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
echo "== installing keras_zoo[$1] into $VENV (TensorFlow is large: the first time takes a few minutes)"
"$VENV/bin/python" -m pip install -q -e ".[$1]" 2>&1 | { grep -v -E "^(WARNING: Location|  )" || true; }
export PATH="$PWD/$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
