import jiwer
import pytest
from hypothesis import given, strategies as st

from asrcompress.objectives import cer, wer


def test_wer_on_known_strings():
    # one substitution in three words; one deletion + one insertion over five words
    assert wer(["a b c"], ["a x c"]) == pytest.approx(1 / 3)
    assert wer(["set a timer", "call mom"], ["set timer", "call my mom"]) == pytest.approx(2 / 5)
    assert wer(["hello world"], [""]) == 1.0
    assert cer(["abcd"], ["abed"]) == pytest.approx(1 / 4)


words = st.lists(st.sampled_from("alpha beta gamma delta".split()), min_size=1, max_size=6).map(" ".join)


@given(st.lists(st.tuples(words, words), min_size=1, max_size=5))
def test_wer_matches_jiwer(pairs):
    refs, hyps = map(list, zip(*pairs))
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps))


def test_wer_needs_references():
    with pytest.raises(ValueError):
        wer([], [])
