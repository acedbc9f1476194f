import json

import soundfile as sf

from asrcompress.data import build_corpus, load_manifest
from asrcompress.data._synth import voice_split, voices_for

from ..conftest import needs_synth


@needs_synth
def test_corpus_is_deterministic_for_a_seed(tmp_path):
    counts = {"train": 4, "dev": 2, "test": 2}
    a = build_corpus(tmp_path / "a", seed=11, counts=counts, workers=2)
    b = build_corpus(tmp_path / "b", seed=11, counts=counts, workers=1)
    assert a["splits"] == b["splits"]
    for split in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_text() == (tmp_path / "b" / f"{split}.jsonl").read_text()
    row = json.loads((tmp_path / "a" / "train.jsonl").read_text().splitlines()[0])
    xa, _ = sf.read(tmp_path / "a" / row["audio_filepath"])
    xb, _ = sf.read(tmp_path / "b" / row["audio_filepath"])
    assert (xa == xb).all()


def test_corpus_manifests_have_required_fields_and_format(tiny_corpus):
    for split in ("train", "dev", "test"):
        rows = [json.loads(line) for line in (tiny_corpus / f"{split}.jsonl").read_text().splitlines()]
        assert rows
        for row in rows:
            assert {"audio_filepath", "text", "duration", "voice", "augmentation"} <= set(row)
            info = sf.info(tiny_corpus / row["audio_filepath"])
            assert info.samplerate == 16000 and info.channels == 1
            assert abs(info.frames / 16000 - row["duration"]) < 1e-3
        utts, report = load_manifest(tiny_corpus / f"{split}.jsonl")
        assert report.loaded == len(rows) and report.n_skipped == 0


def test_test_voices_never_occur_in_train(tiny_corpus):
    train = {json.loads(x)["voice"] for x in (tiny_corpus / "train.jsonl").read_text().splitlines()}
    test = {json.loads(x)["voice"] for x in (tiny_corpus / "test.jsonl").read_text().splitlines()}
    assert not train & test
    assert all(voice_split(v) == "test" for v in test)


@needs_synth
def test_voice_splits_are_disjoint_and_large():
    splits = {s: set(voices_for(s)) for s in ("train", "dev", "test")}
    assert not splits["train"] & splits["test"] and not splits["train"] & splits["dev"]
    assert len(splits["train"]) >= 100 and len(splits["test"]) >= 10
    # kal and kal16 are one flite speaker and must share a split.
    assert voice_split("flite:kal") == voice_split("flite:kal16")


@needs_synth
def test_an_interrupted_build_keeps_its_finished_splits(tmp_path, monkeypatch):
    """`corpus` builds in a resumable staging folder: a re-run synthesises only what is missing,
    and gives the same manifests as an uninterrupted build."""
    from asrcompress.data import _corpus

    counts = {"train": 3, "dev": 2, "test": 2}
    real = _corpus.generate_sentences
    made = []

    def stop_at_test(split, n, seed):
        made.append(split)
        if split == "test" and len(made) == 3:
            raise KeyboardInterrupt  # the user's ^C, during the last split
        return real(split, n, seed)

    monkeypatch.setattr(_corpus, "generate_sentences", stop_at_test)
    try:
        build_corpus(tmp_path / "k", seed=5, counts=counts, workers=1)
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "k" / "test.jsonl").exists() and (tmp_path / "k" / "dev.jsonl").exists()
    build_corpus(tmp_path / "k", seed=5, counts=counts, workers=1)
    assert made == ["train", "dev", "test", "test"]  # train and dev were not made again
    build_corpus(tmp_path / "ref", seed=5, counts=counts, workers=1)
    for split in ("train", "dev", "test"):
        assert (tmp_path / "k" / f"{split}.jsonl").read_text() == (tmp_path / "ref" / f"{split}.jsonl").read_text()
    assert not (tmp_path / "k" / ".splits-done.json").exists()
