import math

import torch

from asrcompress.models import TOKENS, decode_ids, encode, greedy_decode


def test_encode_decode_roundtrip():
    ids = encode("it's a test")
    assert TOKENS[ids[2]] == "'" and 0 not in ids
    assert decode_ids(ids) == "it's a test"


def _posteriors(frames: list[str]) -> torch.Tensor:
    # One near-one-hot frame per symbol; '-' is blank, '|' the word separator.
    lp = torch.full((len(frames), len(TOKENS)), math.log(1e-4))
    for t, sym in enumerate(frames):
        lp[t, TOKENS.index(sym)] = math.log(0.99)
    return lp


def test_greedy_merges_repeats_and_drops_blanks():
    lp = _posteriors(list("hh-e-ll-ll-oo|-w-o"))
    assert greedy_decode(lp[None], torch.tensor([lp.shape[0]])) == ["hello wo"]


def test_greedy_respects_lengths_and_batches():
    a = _posteriors(list("ab-c"))
    b = _posteriors(list("-x--"))
    batch = torch.stack([a, b])
    assert greedy_decode(batch, torch.tensor([4, 2])) == ["abc", "x"]
    assert greedy_decode(batch, torch.tensor([2, 4])) == ["ab", "x"]


def test_greedy_all_blank_is_empty():
    lp = _posteriors(list("----"))
    assert greedy_decode(lp[None], torch.tensor([4])) == [""]
