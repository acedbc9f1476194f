"""Loading user speech data: JSONL manifests (NeMo style) and LibriSpeech folders.

Bad entries (missing, empty, corrupt, non-mono, below 16 kHz or not .wav/.flac/.ogg audio;
empty or unusable transcripts) are either skipped and counted by reason (the default,
reported to the user) or, with ``strict=True``, raised as a UserError naming the file.
Nothing is dropped silently. A malformed manifest line, or a relative path that escapes
the manifest's folder, is always an error naming the line.
"""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import UserError
from ._synth import SAMPLE_RATE, _resample
from ._text import normalize_text

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


@dataclass(frozen=True)
class Utterance:
    id: str
    audio_filepath: Path
    text: str
    duration: float
    # The manifest line's other fields (voice, augmentation, accent, ...): what slices select on.
    fields: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass
class LoadReport:
    source: str
    loaded: int = 0
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def summary(self) -> str:
        s = f"{self.source}: {self.loaded} utterances loaded"
        if self.n_skipped:
            reasons = ", ".join(f"{k}: {len(v)} (e.g. {v[0]})" for k, v in sorted(self.skipped.items()))
            s += f", {self.n_skipped} skipped ({reasons})"
        return s

    def to_dict(self) -> dict:
        return {"source": self.source, "loaded": self.loaded, "skipped": {k: list(v) for k, v in self.skipped.items()}}


def clean_transcript(text: str) -> str:
    """Strip accents (café -> cafe), lower-case, keep [a-z' ]."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return normalize_text(ascii_text)


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz. Other rates are resampled and stereo is averaged to mono."""
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise UserError(f"{path}: unreadable or corrupt audio ({e})") from None
    if x.shape[0] == 0:
        raise UserError(f"{path}: audio has no samples")
    x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise UserError(f"{path}: audio contains NaN or infinite samples")
    return _resample(x, sr, SAMPLE_RATE).astype(np.float32)


def _check_entry(report: LoadReport, uid: str, audio: Path, raw_text: object, strict: bool) -> Utterance | None:
    def bad(reason: str) -> None:
        if strict:
            raise UserError(f"{audio}: {reason}")
        report.skipped[reason].append(str(audio))

    if not audio.is_file():
        return bad("missing audio file")
    if audio.suffix.lower() not in AUDIO_SUFFIXES:
        return bad(f"unsupported audio format '{audio.suffix}' (use {', '.join(AUDIO_SUFFIXES)})")
    if not isinstance(raw_text, str) or not raw_text.strip():
        return bad("empty transcript")
    text = clean_transcript(raw_text)
    if not text:
        return bad("transcript has no usable characters")
    try:
        info = sf.info(str(audio))
    except (sf.LibsndfileError, RuntimeError):
        return bad("unreadable or corrupt audio")
    if info.frames == 0:
        return bad("audio has no samples")
    # Upsampling cannot restore the band the model was trained on; higher rates are resampled.
    if info.samplerate < SAMPLE_RATE:
        return bad(f"sample rate {info.samplerate} Hz is below the model's {SAMPLE_RATE} Hz")
    # Mixing channels is a guess (a call recording has one speaker per channel): the user decides.
    if info.channels != 1:
        return bad(f"{info.channels} audio channels; give mono audio (mix or pick a channel first)")
    report.loaded += 1
    return Utterance(uid, audio, text, info.frames / info.samplerate)


def corpus_split(corpus: Path, split: str, use: str) -> list[Utterance]:
    """The usable utterances of a corpus folder's `split`.jsonl, or one error line saying what
    is missing, for `use` (e.g. "dev utterances to scan on")."""
    manifest = Path(corpus) / f"{split}.jsonl"
    if not manifest.is_file():
        raise UserError(f"{manifest}: not found; --corpus must be a corpus folder with {split}.jsonl")
    utts, _ = load_manifest(manifest)
    if not utts:
        raise UserError(f"{manifest}: no usable {use}")
    return utts


def load_manifest(path: Path, strict: bool = False) -> tuple[list[Utterance], LoadReport]:
    """JSONL lines with `audio_filepath` (absolute or relative to the manifest) and `text`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: manifest not found")
    root = path.parent
    report = LoadReport(str(path))
    out: list[Utterance] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: manifest is not UTF-8 text ({e.reason} at byte {e.start})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "audio_filepath" not in row or "text" not in row:
            raise UserError(f"{path}:{lineno}: each line needs the fields 'audio_filepath' and 'text'")
        if not isinstance(row["audio_filepath"], str) or not row["audio_filepath"].strip():
            raise UserError(f"{path}:{lineno}: 'audio_filepath' must be a non-empty string")
        audio = Path(row["audio_filepath"])
        if not audio.is_absolute():
            audio = root / audio
            # A relative path stays under the manifest's folder (no ../ traversal); absolute
            # paths are the user's explicit choice.
            if not audio.resolve().is_relative_to(root.resolve()):
                raise UserError(f"{path}:{lineno}: audio_filepath {row['audio_filepath']!r} escapes the "
                                f"manifest's folder {root}; use an absolute path if the file really lives there")
        u = _check_entry(report, f"{path.stem}:{lineno}", audio, row["text"], strict)
        if u:
            extra = {k: v for k, v in row.items() if k not in ("audio_filepath", "text", "duration")}
            out.append(replace(u, fields=extra) if extra else u)
    return out, report


def load_librispeech(root: Path, strict: bool = False) -> tuple[list[Utterance], LoadReport]:
    """LibriSpeech layout: speaker/chapter/{speaker}-{chapter}.trans.txt beside the audio."""
    root = Path(root)
    report = LoadReport(str(root))
    out: list[Utterance] = []
    trans_files = sorted(root.rglob("*.trans.txt"))
    if not trans_files:
        raise UserError(f"{root}: no *.trans.txt transcript files found (not a LibriSpeech folder)")
    transcribed: set[Path] = set()
    for tf in trans_files:
        for lineno, line in enumerate(tf.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            audio = next((tf.parent / (uid + s) for s in AUDIO_SUFFIXES if (tf.parent / (uid + s)).exists()),
                         tf.parent / (uid + ".flac"))
            transcribed.add(audio)
            u = _check_entry(report, uid, audio, text, strict)
            if u:
                out.append(u)
    for audio in sorted(p for s in AUDIO_SUFFIXES for p in root.rglob("*" + s)):
        if audio not in transcribed:
            if strict:
                raise UserError(f"{audio}: audio file has no transcript line in its chapter's .trans.txt")
            report.skipped["no transcript"].append(str(audio))
    return out, report


def load_dataset(path: Path, strict: bool = False) -> tuple[list[Utterance], LoadReport]:
    """A JSONL manifest file, or a LibriSpeech-style folder."""
    path = Path(path)
    if path.is_dir():
        return load_librispeech(path, strict)
    if not path.exists():
        raise UserError(f"{path}: no such manifest file or LibriSpeech folder")
    return load_manifest(path, strict)
