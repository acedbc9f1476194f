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


def _char_dir(tmp_path, sentences):
    from asrcompress.objectives import CHAR_LM_FILE, char_sentence

    estimate_arpa([char_sentence(s) for s in sentences], tmp_path / CHAR_LM_FILE, order=5)
    return tmp_path


def test_char_sentence_spells_words_with_the_separator_token():
    from asrcompress.objectives import char_sentence

    assert char_sentence("hi you") == "h i | y o u"


def test_lexicon_free_beam_spells_a_word_no_lexicon_holds(tmp_path):
    """beam_char writes a new word as heard; the lexicon decoder can only put a known word there."""
    # every letter occurs in training text, as in any real corpus; "zoe" does not
    sentences = ["call anna now", "call bob now", "call anna later",
                 "the quick brown fox jumps over the lazy dog"] * 3
    d = _char_dir(_model_dir(tmp_path, sentences), sentences)  # both decoders' assets in one folder
    lp = _posteriors(_spell("call zoe now"))
    assert build_decoder(d, DecoderConfig(kind="beam_char", lm_weight=0.5))(lp) == "call zoe now"
    assert "zoe" not in build_decoder(d, DecoderConfig(kind="beam_lm", lm_weight=0.5))(lp).split()


def test_character_lm_breaks_acoustic_ties(tmp_path):
    d = _char_dir(tmp_path, ["set a timer for ten minutes"] * 3 + ["go far away"])
    tie = {13: {"o": 0.48, "a": 0.48}}
    lp = _posteriors(_spell("set a timer for ten minutes", ambiguous=tie))
    assert build_decoder(d, DecoderConfig(kind="beam_char", lm_weight=1.0))(lp) == "set a timer for ten minutes"


def test_word_error_rate_on_a_subset_of_reference_words():
    from asrcompress.objectives import out_of_lexicon, word_errors

    assert word_errors(["a b c d"], ["a x c"]) == (2, 4)  # b substituted, d deleted; the insertion-free count
    o = out_of_lexicon(["call zed now", "call bob"], ["call zed now", "call bop"], {"call", "now"})
    assert o == {"ool_share": 0.4, "ool_words": 2, "ool_wer": 0.5}
