#!/usr/bin/env bash
# Train the shipped base model on a lent GPU machine that has torch/torchaudio but no
# network. scripts/gpu_prepare.sh (run on a networked machine) fills .gpu/ with the
# Debian packages (espeak-ng, flite) and wheels this needs; .gpu/ travels with the tree.
# Usage: bash scripts/gpu_train.sh OUTDIR [EPOCHS] [MINUTES] [GENERATOR]  (MINUTES bounds the whole script;
# GENERATOR 2 synthesises the 7,000-word corpus with espeak 1.48 and sox perturbation too)
set -euo pipefail
out=${1:?output folder}; epochs=${2:-40}; minutes=${3:-6}; generator=${4:-1}
mkdir -p /tmp/deb /tmp/site
for f in .gpu/*.deb; do dpkg -x "$f" /tmp/deb; done
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/*.whl
# Wrappers, so only the synthesisers see the Debian libraries (python keeps the host's).
mkdir -p /tmp/bin
for tool in espeak-ng flite espeak sox; do
  cat > /tmp/bin/$tool <<WRAP
#!/bin/sh
L=/tmp/deb/usr/lib/x86_64-linux-gnu
LD_LIBRARY_PATH=\$L:\$L/pulseaudio:/tmp/deb/lib/x86_64-linux-gnu ESPEAK_DATA_PATH=\$L exec /tmp/deb/usr/bin/$tool "\$@"
WRAP
  chmod +x /tmp/bin/$tool
done
[ -e /usr/lib/x86_64-linux-gnu/espeak-ng-data ] || ln -s /tmp/deb/usr/lib/x86_64-linux-gnu/espeak-ng-data /usr/lib/x86_64-linux-gnu/espeak-ng-data
[ -e /usr/lib/x86_64-linux-gnu/espeak-data ] || ln -s /tmp/deb/usr/lib/x86_64-linux-gnu/espeak-data /usr/lib/x86_64-linux-gnu/espeak-data
export PATH=/tmp/bin:$PATH
espeak-ng --voices=variant | head -2 && flite -lv
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -f /tmp/corpus/test.jsonl ] || python3 -m asrcompress.cli corpus --out /tmp/corpus --seed 0 --size default \
  --generator "$generator" > /tmp/corpus.log
cat /tmp/corpus/corpus.json
left=$(python3 -c "print(round(($minutes*60 - $SECONDS)/60, 2))")
echo "synthesis done at ${SECONDS}s; training for at most $left min"
warp=$([ "$generator" = 2 ] && echo 0.1 || echo 0)  # generator 2: vocal-tract-length perturbation too
python3 -m asrcompress.cli train --corpus /tmp/corpus --out /tmp/model --epochs "$epochs" \
  --max-minutes "$left" --warp "$warp" --no-finalize || echo "train exit $?"
mkdir -p "$out"
# An unfinished run (time budget reached) stays in train's resumable staging folder.
[ -d /tmp/model ] || { [ -d /tmp/.model.partial ] && ln -sfn /tmp/.model.partial /tmp/model; }
cp /tmp/model/config.json /tmp/model/train_summary.json /tmp/corpus/corpus.json "$out"/ 2>/dev/null || true
[ -f /tmp/model/model.safetensors ] && split -b 15M /tmp/model/model.safetensors "$out"/model.safetensors.part.
sha256sum /tmp/model/model.safetensors || true
