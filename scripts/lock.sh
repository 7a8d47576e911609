#!/usr/bin/env bash
# Writes requirements.lock: the product's dependencies (pyproject's `dependencies` and the
# `gcp` extra), every one pinned with the hashes of its files, for Python 3.11 to 3.13.
#
#   scripts/lock.sh              lock what pyproject.toml asks for, keeping the current pins
#                                that still satisfy it (the smallest change)
#   scripts/lock.sh --upgrade    take the newest versions pyproject.toml allows
#   scripts/lock.sh --upgrade-package NAME
#                                the newest NAME only
#
# `uv pip compile --universal` resolves once for every Python and platform, with markers
# where they need different versions (numpy is one), so one file serves the image (3.13)
# and CI (3.11 and 3.13). Then each Python's pins are checked to have a binary wheel for
# Linux x86_64 (glibc 2.36, the image's Debian), so the image installs with no compiler.
# uv lives in its own virtualenv (.tools/uv); the lock needs the package index, nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UV_VERSION=0.13.9
TOOLS="$ROOT/.tools/uv"
UV="$TOOLS/bin/uv"
LOCK="$ROOT/requirements.lock"
PYTHONS=(3.11 3.12 3.13)
PLATFORM=x86_64-manylinux_2_36

say() { printf 'lock: %s\n' "$*" >&2; }

if [[ "$("$UV" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    say "installing uv $UV_VERSION into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --only-binary :all: "uv==$UV_VERSION"
fi

cd "$ROOT"
"$UV" pip compile pyproject.toml --extra gcp \
    --universal --python-version "${PYTHONS[0]}" \
    --generate-hashes --custom-compile-command "make lock" \
    --output-file "$LOCK" --quiet "$@"

for python in "${PYTHONS[@]}"; do
    "$UV" pip compile "$LOCK" --no-deps --only-binary :all: \
        --python-platform "$PLATFORM" --python-version "$python" \
        --no-header --no-annotate --quiet --output-file /dev/null ||
        { say "a pin in $LOCK has no wheel for Python $python on $PLATFORM"; exit 1; }
done
say "wrote $LOCK ($(grep -c '^[a-z0-9]' "$LOCK") pins; wheels for Python ${PYTHONS[*]} on $PLATFORM)"
