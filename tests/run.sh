#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then lint and run every test.
# System packages (Debian): chromium for the real-browser test, WordNet for METEOR's synonyms.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages="chromium wordnet-base wordnet-sense-index"
missing=""
for pkg in $apt_packages; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  else
    echo "note: install$missing with sudo apt-get for the browser and METEOR tests" >&2
  fi
fi

python3 -m pip install -q -e ".[test]"
ruff check .
python3 -m pytest -q -p no:cacheprovider --durations=15
