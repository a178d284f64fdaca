#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv (or the active one) with agefair and everything
# it needs. Usage: bash scripts/setup.sh   (then: . .venv/bin/activate)
#
# Why two pip calls: face_recognition declares a requirement on `dlib`, which pip would build from
# source (~11 minutes on 2 cores). We install the prebuilt `dlib-bin` wheel instead (it provides the
# same `dlib` module, in seconds) through agefair's own dependencies, then face_recognition itself
# with --no-deps; its other requirements (face_recognition_models, Click, numpy, Pillow) are
# agefair dependencies too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  venv="${AGEFAIR_VENV:-.venv}"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
fi
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[dev]"
python -m pip install --quiet --no-deps "face_recognition==1.3.0"
python -c "import agefair, torch, fairlearn, face_recognition, dlib; print(f'agefair {agefair.__version__} ready: torch {torch.__version__}, fairlearn {fairlearn.__version__}, dlib {dlib.__version__}')"
