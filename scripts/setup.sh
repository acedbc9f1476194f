#!/usr/bin/env bash
# Creates .venv with CPU torch, torchaudio's pure-Python parts, and asrcompress[dev] (all extras)
# at the versions in constraints.txt;
# installs the Debian synthesisers when run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v flite >/dev/null || need_apt+=(flite)
# espeak 1.48, the older engine: a second formant synthesiser for generator-2 corpora.
command -v espeak >/dev/null || need_apt+=(espeak)
command -v sox >/dev/null || need_apt+=(sox)
ldconfig -p 2>/dev/null | grep -q libsndfile.so.1 || need_apt+=(libsndfile1)
# Headless Chromium renders plotly figures to PNG (kaleido) and drives the MLflow UI in browser tests.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# A throwaway PostgreSQL server for the concurrent-workers reliability test (make test-reliability).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}; install them with: sudo apt-get install ${need_apt[*]}" >&2
  fi
fi

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# CPU torch only: never let pip resolve a CUDA build (several GB).
pip install -c constraints.txt "torch==2.13.0"
# torchaudio 2.11 is built against CUDA torch 2.11: take its pure-Python parts only and
# delete the compiled extensions, which cannot load on CPU torch 2.13.
pip install --no-deps -c constraints.txt "torchaudio==2.11.0"
rm -f .venv/lib/python3*/site-packages/torchaudio/lib/*.so
# Every extra (ray, postgres, report, hf) and the test tools, at the pinned versions.
pip install -c constraints.txt -e ".[dev]"
.venv/bin/python -c "import torch, torchaudio.models, asrcompress; print('setup: torch', torch.__version__, '| torchaudio', torchaudio.__version__)"
