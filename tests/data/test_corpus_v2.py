"""Generator 2: the 7,000-word domain with held-out words and templates, espeak 1.48 voices,
perturbation, and the cross-synthesiser splits (synthesisers never in training)."""

import json
import shutil

import numpy as np
import pytest

from asrcompress.data import CROSS_SPLITS, build_corpus, domain_vocabulary_v2, generate_sentences_v2
from asrcompress.data._domain import TEMPLATES, closed_vocabulary, entry_split, open_lists, plural, template_split
from asrcompress.data._synth import augment_v2, telephone, voice_split_v2, voices_for_v2

from ..conftest import needs_synth


def test_domain_has_at_least_5000_words_with_names_places_and_numbers():
    vocab = domain_vocabulary_v2()
    assert len(vocab) >= 5000
    assert {"london", "maria", "smith", "california", "thousand", "twenty", "dollars"} <= vocab
    assert len(open_lists()["city"]) >= 1000 and len(open_lists()["name"]) >= 500


def test_train_text_never_uses_a_held_out_entry_or_template():
    train = generate_sentences_v2("train", 3000, seed=0)
    entries = {e for lst in open_lists().values() for e in lst}
    # a held-out entry's word may still be said otherwise: in a train entry of another list
    # ("light"), as a train noun's plural, in a template, a month or colour list; the words it
    # alone brings must be absent
    train_entries = {e for e in entries if entry_split(e) == "train"}
    elsewhere = closed_vocabulary() | {w for e in train_entries for w in e.split()} | {
        plural(e) for e in train_entries}
    only_held = {w for e in entries if entry_split(e) != "train" for w in e.split()} - elsewhere
    words = {w for s in train for w in s.split()}
    assert len(only_held) > 500 and not only_held & words
    assert sum(template_split(t) != "train" for t in TEMPLATES) >= 10


def test_test_text_brings_new_words_and_never_repeats_a_train_sentence():
    train = generate_sentences_v2("train", 12_000, seed=0)
    test = generate_sentences_v2("test", 1_000, seed=0)
    known = {w for s in train for w in s.split()}
    tokens = [w for s in test for w in s.split()]
    ool = sum(w not in known for w in tokens) / len(tokens)
    assert ool >= 0.10, ool  # the out-of-lexicon test set
    assert not set(train) & set(test)
    assert generate_sentences_v2("test", 50, seed=0) == test[:50]  # deterministic per seed


@pytest.mark.parametrize("noun, want", [("box", "boxes"), ("city", "cities"), ("day", "days"), ("cat", "cats")])
def test_plurals(noun, want):
    assert plural(noun) == want


@needs_synth
def test_cross_synthesiser_splits_hold_whole_synthesisers_out_of_training():
    if shutil.which("espeak") is None:
        pytest.skip("espeak 1.48 not installed (make setup installs it)")
    train = voices_for_v2("train")
    assert not any(v.startswith("flite:") for v in train)
    assert not any("+klatt" in v for v in train)
    assert any(v.startswith("espeak1:") for v in train)
    assert {voice_split_v2(v) for v in voices_for_v2("test_flite")} == {"test_flite"}
    assert voices_for_v2("dev_flite") == ["flite:rms"]
    assert len(voices_for_v2("test_klatt")) >= 10


def test_telephone_channel_removes_the_band_above_4_khz():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16_000).astype(np.float32) * 0.1
    y = telephone(x)
    spec_x, spec_y = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(y))
    hi = slice(int(4_500 / 8_000 * spec_x.size), None)
    assert y.shape == x.shape and spec_y[hi].mean() < 0.05 * spec_x[hi].mean()


@needs_synth
def test_held_out_speech_gets_only_generator_1_perturbation():
    from asrcompress.data._synth import synthesize

    x = synthesize("hello there", "espeak:en-us+m3", 1.0, 50)
    for i in range(20):
        _, desc = augment_v2(x, np.random.default_rng(i), train=False)
        assert not any(k in desc for k in ("pitch=", "tempo=", "telephone"))


@needs_synth
def test_a_generator_2_corpus_writes_its_cross_synthesiser_splits(tmp_path):
    if shutil.which("espeak") is None or shutil.which("sox") is None:
        pytest.skip("espeak 1.48 and sox are needed (make setup installs them)")
    counts = {"train": 6, "dev": 2, "test": 3, "dev_flite": 2, "test_flite": 3, "test_klatt": 2}
    summary = build_corpus(tmp_path / "c", seed=5, counts=counts, workers=2, generator=2)
    assert summary["generator_version"] == 2 and set(summary["splits"]) == {"train", "dev", "test", *CROSS_SPLITS}
    rows = {s: [json.loads(x) for x in (tmp_path / "c" / f"{s}.jsonl").read_text().splitlines()] for s in counts}
    assert all(r["voice"].startswith("flite:") for r in rows["test_flite"] + rows["dev_flite"])
    assert all("+klatt" in r["voice"] for r in rows["test_klatt"])
    texts = {s: {r["text"] for r in rows[s]} for s in counts}
    assert not texts["test"] & texts["test_flite"] and not texts["train"] & texts["test_flite"]
