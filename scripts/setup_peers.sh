#!/usr/bin/env bash
# Creates .venv-peers with the peer tools the benchmark compares against (Intel Neural
# Compressor, Microsoft Olive, OpenVINO NNCF, Qualcomm AIMET). They are benchmark-only: kept out
# of .venv so their pins never reach asrcompress's runtime dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv-peers/bin/python ] || "$PY" -m venv .venv-peers
pip() { .venv-peers/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# CPU torch first, from the local wheel, so no peer can pull a CUDA build.
pip install "torch==2.13.0"
pip install "onnx==1.23.2" "onnxruntime==1.32.0" "numpy<2.4" "neural-compressor==3.10" "neural-compressor-pt==3.10" "olive-ai==0.13.0" "optuna==5.0.0" "soundfile" "jiwer" "requests"
pip install "nncf==3.4.0"
# aimet-onnx resolves a CUDA torch 2.14 and 15 nvidia packages unless torch and torchvision are
# pinned (../shared/notes/peers.md); torchvision 0.28.0 is a CUDA build that cannot import on CPU
# torch, which the ONNX QuantSim path does not need.
printf 'torch==2.13.0\ntorchvision==0.28.0\nonnx==1.23.2\nonnxruntime==1.32.0\n' > .venv-peers/aimet-constraints.txt
pip install -c .venv-peers/aimet-constraints.txt "aimet-onnx==2.42.0" && pip uninstall -y torchvision || echo "setup_peers: aimet-onnx did not install (the bench reports it)"
# (torchvision only came as aimet's pin; left installed, its failed import breaks torchmetrics and so Olive)
.venv-peers/bin/python -c "import torch, onnxruntime, neural_compressor, olive, nncf; print('peers:', torch.__version__, onnxruntime.__version__, neural_compressor.__version__, olive.__version__, nncf.__version__)"
# The peer scripts load the shipped model with asrcompress's own modules (PYTHONPATH=src), which
# need torchaudio's pure-Python Conformer (as in scripts/setup.sh) and a few light packages.
pip install --no-deps "torchaudio==2.11.0"
rm -f .venv-peers/lib/python3*/site-packages/torchaudio/lib/*.so
pip install safetensors pyyaml accelerate
PYTHONPATH=src .venv-peers/bin/python -c "from asrcompress.models import load_model; load_model('models/conformer_ctc_base'); print('peers: asrcompress model loads')"
