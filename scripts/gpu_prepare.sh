#!/usr/bin/env bash
# Fill .gpu/ with what scripts/gpu_train.sh needs on an offline GPU machine (Python 3.12).
set -euo pipefail
mkdir -p .gpu && cd .gpu
apt-get download espeak-ng espeak-ng-data libespeak-ng1 libpcaudio0 libsonic0 flite libflite1 \
  libasound2 libasound2-data libpulse0 libsndfile1 libasyncns0 libflac12 libogg0 libvorbis0a \
  libvorbisenc2 libopus0 libmpg123-0 libmp3lame0 libdbus-1-3 \
  libx11-xcb1 libx11-6 libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 \
  espeak espeak-data libespeak1 libportaudio2 libjack-jackd2-0 libsamplerate0 \
  sox libsox3 libsox-fmt-base libgsm1 libltdl7 libmagic1 libmagic-mgc libgomp1 libpng16-16 libwavpack1 \
  libvorbisfile3 libopencore-amrnb0 libopencore-amrwb0 libao4 libao-common
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d . soundfile cffi pycparser jiwer rapidfuzz
