"""Speech synthesis (espeak-ng, espeak 1.48, flite) and waveform augmentation.

Voices are identified by strings such as ``espeak:en-gb-scotland+m3`` (espeak-ng),
``espeak1:en-sc+f2`` (the older espeak 1.48 engine) or ``flite:slt``. Which split a voice
belongs to is a pure function of its id, so test voices never occur in training whatever the
seed. Generator 2 (`voice_split_v2`) also holds whole synthesisers out of training: flite
(`dev_flite`, `test_flite`) and every Klatt-synthesis variant of both espeak engines (`test_klatt`).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tempfile
import zlib

import numpy as np
import soundfile as sf

from ..errors import UserError

SAMPLE_RATE = 16_000

ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# flite's kal and kal16 are one speaker, so they must share a split.
FLITE_SPLIT = {"kal": "train", "kal16": "train", "slt": "train", "rms": "dev", "awb": "test"}
ESPEAK1_ACCENTS = ("en", "en-us", "en-sc", "en-n", "en-rp", "en-wm", "en-wi")
# Generator 2: flite is never trained on (rms tunes early stopping, the others are its test).
FLITE_SPLIT_V2 = {"kal": "test_flite", "kal16": "test_flite", "slt": "test_flite", "awb": "test_flite",
                  "rms": "dev_flite"}
CROSS_SPLITS = ("dev_flite", "test_flite", "test_klatt")


def require_tools(engines: tuple[str, ...] = ("espeak-ng", "flite")) -> None:
    missing = [t for t in engines if shutil.which(t) is None]
    if missing:
        raise UserError(
            f"speech synthesis needs {', '.join(missing)} on PATH; "
            f"install with: apt-get install {' '.join(missing)} (make setup does this as root)"
        )


@functools.lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """espeak-ng's voice variants (m1, f3, klatt, ...) as installed."""
    out = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return tuple(sorted(set(names)))


@functools.lru_cache(maxsize=1)
def espeak1_variants() -> tuple[str, ...]:
    """espeak 1.48's voice variants as installed (none where it is not)."""
    if shutil.which("espeak") is None:
        return ()
    out = subprocess.run(["espeak", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return tuple(sorted({p[4][3:] for p in (line.split() for line in out.splitlines()[1:])
                         if len(p) >= 5 and p[4].startswith("!v/")}))


def voice_split_v2(voice: str) -> str:
    """Generator 2: flite and the Klatt variants are held-out synthesisers; other voices by CRC."""
    engine, name = voice.split(":", 1)
    if engine == "flite":
        return FLITE_SPLIT_V2[name]
    if name.partition("+")[2].startswith("klatt"):
        return "test_klatt"
    return voice_split(voice) if engine == "espeak" else _crc_split(voice)


def voices_for_v2(split: str) -> list[str]:
    voices = [f"espeak:{a}+{v}" for a in ESPEAK_ACCENTS for v in espeak_variants()]
    voices += [f"espeak1:{a}+{v}" for a in ESPEAK1_ACCENTS for v in espeak1_variants()]
    voices += [f"flite:{n}" for n in FLITE_SPLIT_V2]
    return [v for v in voices if voice_split_v2(v) == split]


def _crc_split(voice: str) -> str:
    bucket = zlib.crc32(voice.encode()) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def voice_split(voice: str) -> str:
    engine, name = voice.split(":", 1)
    if engine == "flite":
        return FLITE_SPLIT[name]
    return _crc_split(voice)


def voices_for(split: str) -> list[str]:
    espeak = [f"espeak:{a}+{v}" for a in ESPEAK_ACCENTS for v in espeak_variants()]
    flite = [f"flite:{n}" for n in FLITE_SPLIT]
    return [v for v in espeak + flite if voice_split(v) == split]


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(x).float(), sr_in, sr_out).numpy()


def synthesize(text: str, voice: str, rate: float, pitch: int) -> np.ndarray:
    """Mono float32 waveform at 16 kHz. `rate` scales the engine's default speaking rate."""
    engine, name = voice.split(":", 1)
    if engine in ("espeak", "espeak1"):
        cmd = ["espeak-ng" if engine == "espeak" else "espeak", "-v", name, "-s", str(int(175 * rate)),
               "-p", str(pitch), "--stdout", text]
        wav = subprocess.run(cmd, capture_output=True, check=True).stdout
        x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    else:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "out.wav")
            stretch = f"{1.0 / rate:.3f}"
            subprocess.run(
                ["flite", "-voice", name, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", path],
                capture_output=True, check=True,
            )
            x, sr = sf.read(path, dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return _resample(x, sr, SAMPLE_RATE).astype(np.float32)


def _colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if color == "white":
        return white
    # Shape the spectrum: pink ~ 1/f power, brown ~ 1/f^2.
    spec = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spec /= np.sqrt(f) if color == "pink" else f
    return np.fft.irfft(spec, n)


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Random speed perturbation, reverb and additive noise; returns (audio, description)."""
    parts = []
    speed = float(rng.choice([0.9, 1.0, 1.0, 1.1]))
    if speed != 1.0:
        # Kaldi-style speed perturbation: resample, changing tempo and pitch together.
        x = _resample(x, int(SAMPLE_RATE * speed), SAMPLE_RATE)
        parts.append(f"speed={speed}")
    if rng.random() < 0.3:
        rt60 = float(rng.uniform(0.15, 0.5))
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        rir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0 / float(rng.uniform(0.3, 0.8))  # direct path dominates
        rir /= np.abs(rir).sum() ** 0.5 * 4
        x = np.convolve(x, rir)[: x.size]
        parts.append(f"reverb_rt60={rt60:.2f}")
    if rng.random() < 0.6:
        color = str(rng.choice(["white", "pink", "brown"]))
        snr = float(rng.uniform(5, 30))
        noise = _colored_noise(x.size, color, rng)
        p_sig = float(np.mean(x**2)) + 1e-12
        p_noise = float(np.mean(noise**2)) + 1e-12
        x = x + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
        parts.append(f"noise={color}@{snr:.0f}dB")
    peak = float(np.abs(x).max()) + 1e-9
    gain = float(rng.uniform(0.3, 0.95))
    return (x / peak * gain).astype(np.float32), ",".join(parts) or "none"


def _sox(x: np.ndarray, *effects: str) -> np.ndarray:
    """Run sox effects on a 16 kHz mono float waveform (sox keeps the rate)."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.wav"), os.path.join(d, "out.wav")
        sf.write(src, x, SAMPLE_RATE, subtype="FLOAT")
        subprocess.run(["sox", src, dst, *effects], capture_output=True, check=True)
        y, _ = sf.read(dst, dtype="float32")
    return y if y.ndim == 1 else y.mean(axis=1)


def telephone(x: np.ndarray) -> np.ndarray:
    """Telephone channel: 8 kHz narrow band (300-3400 Hz) and 8-bit mu-law, back at 16 kHz."""
    import torch
    import torchaudio.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    t = F.bandpass_biquad(F.highpass_biquad(t, SAMPLE_RATE, 300.0), SAMPLE_RATE, 1850.0, Q=0.6)
    narrow = F.resample(t, SAMPLE_RATE, 8000).clamp(-1, 1)
    coded = F.mu_law_decoding(F.mu_law_encoding(narrow, 256), 256)
    return F.resample(coded, 8000, SAMPLE_RATE).numpy()[: x.size].astype(np.float32)


def augment_v2(x: np.ndarray, rng: np.random.Generator, train: bool) -> tuple[np.ndarray, str]:
    """Generator 2: for training speech, pitch shift and tempo change (sox) and a telephone
    channel, before generator 1's speed, reverb, noise and gain. Held-out speech gets only
    generator 1's (a held-out voice should sound like itself)."""
    parts = []
    if train and rng.random() < 0.3:
        cents = int(rng.integers(-400, 401))
        x = _sox(x, "pitch", str(cents))
        parts.append(f"pitch={cents}c")
    if train and rng.random() < 0.3:
        tempo = float(rng.uniform(0.8, 1.2))
        x = _sox(x, "tempo", "-s", f"{tempo:.3f}")
        parts.append(f"tempo={tempo:.2f}")
    if train and rng.random() < 0.1:
        x = telephone(x)
        parts.append("telephone")
    x, rest = augment(x, rng)
    return x, ",".join([*parts, rest] if rest != "none" or not parts else parts)
