#!/bin/sh
# The production install, the one way: a venv at VENV with the package from SOURCE, without the
# dev extras (no pytest, no Synapse). The Containerfile runs this script, and so does
# tests/test_production_install.py, so the container installs what the test proved.
#
#   deploy/install.sh VENV [SOURCE]      SOURCE defaults to the directory above this script
#
# An upgrade is the same call with the new source; then `python -m bot migrate` (see the README).
set -eu

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 VENV [SOURCE]" >&2
    exit 2
fi
venv=$1
source_dir=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}

if [ ! -f "$source_dir/pyproject.toml" ]; then
    echo "$0: no pyproject.toml in $source_dir" >&2
    exit 2
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# Not editable and no extras: the venv holds a copy of the code, catalogs and migrations, so the
# source directory may go away afterwards.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$source_dir"
