import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrcompress.data import load_dataset, load_librispeech, load_manifest, read_audio
from asrcompress.errors import UserError


def _write_wav(path: Path, seconds=0.5, sr=16000, channels=1) -> Path:
    x = (np.random.default_rng(0).standard_normal((int(seconds * sr), channels)) * 0.1).astype(np.float32)
    sf.write(path, x if channels > 1 else x[:, 0], sr)
    return path


def _manifest(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def librispeech(tiny_corpus, tmp_path) -> Path:
    """LibriSpeech layout built from synthesised audio: 2 speakers, 1 chapter each."""
    rows = [json.loads(x) for x in (tiny_corpus / "train.jsonl").read_text().splitlines()][:6]
    root = tmp_path / "LibriSpeech" / "dev-clean"
    for k, row in enumerate(rows):
        spk, chap = 100 + k % 2, 7
        d = root / str(spk) / str(chap)
        d.mkdir(parents=True, exist_ok=True)
        uid = f"{spk}-{chap}-{k:04d}"
        shutil.copy(tiny_corpus / row["audio_filepath"], d / f"{uid}.flac")
        with open(d / f"{spk}-{chap}.trans.txt", "a") as f:
            f.write(f"{uid} {row['text'].upper()}\n")
    return root


def test_jsonl_manifest_relative_and_absolute_paths(tmp_path):
    _write_wav(tmp_path / "a.wav")
    b = _write_wav(tmp_path / "b.wav", seconds=1.0)
    m = _manifest(tmp_path / "m.jsonl", [{"audio_filepath": "a.wav", "text": "Hello World"},
                                         {"audio_filepath": str(b), "text": "café au lait"}])
    utts, report = load_manifest(m)
    assert [u.text for u in utts] == ["hello world", "cafe au lait"]
    assert report.loaded == 2 and report.n_skipped == 0
    assert utts[1].duration == pytest.approx(1.0)


def test_librispeech_folder_loads_every_utterance(librispeech):
    utts, report = load_librispeech(librispeech)
    assert len(utts) == 6 and report.n_skipped == 0
    assert all(u.text == u.text.lower() and u.text for u in utts)
    assert read_audio(utts[0].audio_filepath).dtype == np.float32
    assert load_dataset(librispeech)[1].loaded == 6


def test_librispeech_audio_without_transcript_is_counted(librispeech):
    extra = next(librispeech.rglob("*.flac")).parent / "100-7-9999.flac"
    _write_wav(extra)
    utts, report = load_librispeech(librispeech)
    assert len(utts) == 6 and report.skipped["no transcript"] == [str(extra)]
    with pytest.raises(UserError, match="100-7-9999.flac"):
        load_librispeech(librispeech, strict=True)


def test_folder_without_transcripts_is_refused(tmp_path):
    _write_wav(tmp_path / "x.flac")
    with pytest.raises(UserError, match="no \\*.trans.txt"):
        load_librispeech(tmp_path)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: (d / "missing.wav", "hi"), "missing audio file"),
        (lambda d: (_write_wav(d / "e.wav"), ""), "empty transcript"),
        (lambda d: (_write_wav(d / "e.wav"), "   "), "empty transcript"),
        (lambda d: (_write_wav(d / "e.wav"), "!!! ???"), "transcript has no usable characters"),
        (lambda d: ((d / "c.wav").write_bytes(b"RIFF\x00\x00garbage") and d / "c.wav", "hi"),
         "unreadable or corrupt audio"),
        (lambda d: ((d / "z.wav").write_bytes(b"") or d / "z.wav", "hi"), "unreadable or corrupt audio"),
    ],
)
def test_bad_entries_are_skipped_and_counted_or_raised_when_strict(tmp_path, make, reason):
    good = _write_wav(tmp_path / "good.wav")
    audio, text = make(tmp_path)
    m = _manifest(tmp_path / "m.jsonl", [{"audio_filepath": str(good), "text": "ok"},
                                         {"audio_filepath": str(audio), "text": text}])
    utts, report = load_manifest(m)
    assert len(utts) == 1 and report.skipped[reason] == [str(audio)]
    assert reason.split()[0] in report.summary()
    with pytest.raises(UserError) as e:
        load_manifest(m, strict=True)
    assert str(audio) in str(e.value)


def test_wrong_sample_rate_is_resampled_and_stereo_is_mixed(tmp_path):
    x8 = read_audio(_write_wav(tmp_path / "8k.wav", seconds=1.0, sr=8000))
    assert x8.shape == (16000,)
    st = read_audio(_write_wav(tmp_path / "st.wav", seconds=0.5, channels=2))
    assert st.ndim == 1 and st.shape == (8000,)


@pytest.mark.parametrize(
    "line, match",
    [
        ("{not json", "m.jsonl:1: not valid JSON"),
        (json.dumps({"text": "hi"}), "m.jsonl:1: each line needs"),
        (json.dumps(["a", "b"]), "m.jsonl:1: each line needs"),
    ],
)
def test_malformed_manifest_lines_name_the_line(tmp_path, line, match):
    m = _manifest(tmp_path / "m.jsonl", [line])
    with pytest.raises(UserError, match=match):
        load_manifest(m)


def test_missing_manifest_and_non_utf8(tmp_path):
    with pytest.raises(UserError, match="no such manifest"):
        load_dataset(tmp_path / "nope.jsonl")
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="b.jsonl: manifest is not UTF-8"):
        load_manifest(bad)
