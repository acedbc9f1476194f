import math

import torch

from asrcompress.models import TOKENS
from asrcompress.objectives import DecoderConfig, build_decoder, estimate_arpa, write_lexicon


def _posteriors(frames: list[dict[str, float]]) -> torch.Tensor:
    """Each frame: {symbol: prob}; the remaining mass is spread over the other tokens."""
    rows = []
    for f in frames:
        rest = (1 - sum(f.values())) / (len(TOKENS) - len(f))
        rows.append([math.log(f.get(t, rest)) for t in TOKENS])
    return torch.tensor(rows, dtype=torch.float32)


def _spell(text: str, ambiguous: dict[int, dict[str, float]] | None = None) -> list[dict[str, float]]:
    frames = []
    for i, ch in enumerate(text.replace(" ", "|")):
        frames.append((ambiguous or {}).get(i, {ch: 0.97}))
        frames.append({"-": 0.97})
    frames.append({"|": 0.97})
    return frames


def _model_dir(tmp_path, sentences):
    estimate_arpa(sentences, tmp_path / "lm.arpa", order=3)
    write_lexicon({w for s in sentences for w in s.split()} | {"far", "tymer"}, tmp_path / "lexicon.txt")
    return tmp_path


def test_greedy_decoder_follows_the_best_path(tmp_path):
    lp = _posteriors(_spell("set a tymer"))
    assert build_decoder(tmp_path, DecoderConfig(kind="greedy"))(lp) == "set a tymer"


def test_lexicon_beam_search_outputs_only_lexicon_words(tmp_path):
    d = _model_dir(tmp_path, ["set a timer for ten minutes", "set a timer for two minutes"])
    # 'timer' with the i slightly less likely than 'y': greedy says "tymer", which is not a
    # word the LM ever saw; the LM pulls the beam to "timer".
    lp = _posteriors(_spell("set a timer", ambiguous={7: {"y": 0.5, "i": 0.45}}))
    assert build_decoder(d, DecoderConfig(kind="greedy"))(lp) == "set a tymer"
    assert build_decoder(d, DecoderConfig(lm_weight=1.0))(lp) == "set a timer"


def test_lm_breaks_acoustic_ties(tmp_path):
    d = _model_dir(tmp_path, ["set a timer for ten minutes"] * 3 + ["go far away"])
    tie = {13: {"o": 0.48, "a": 0.48}}  # the vowel of "for"/"far" (character 13)
    lp = _posteriors(_spell("set a timer for ten minutes", ambiguous=tie))
    assert build_decoder(d, DecoderConfig(lm_weight=1.0))(lp) == "set a timer for ten minutes"
