import math

import pytest

from asrcompress.errors import UserError
from asrcompress.objectives import NgramLM, estimate_arpa

SENTS = ["set a timer for ten minutes", "set an alarm for ten", "call mom", "call dad now",
         "set a timer for two hours", "play some jazz", "play jazz now"]


@pytest.fixture
def lm(tmp_path):
    estimate_arpa(SENTS, tmp_path / "lm.arpa", order=3)
    return NgramLM(tmp_path / "lm.arpa")


@pytest.mark.parametrize("context", [("<s>",), ("<s>", "set"), ("set", "a"), ("for", "ten"), ("zebra", "call"), ()])
def test_conditional_distribution_sums_to_one(lm, context):
    # Kneser-Ney with back-off is a proper distribution over the vocabulary plus </s>.
    vocab = lm.words() + ["</s>"]
    total = sum(math.exp(lm.score(context, w)) for w in vocab)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_in_domain_continuations_are_preferred(lm):
    assert lm.score(("set", "a"), "timer") > lm.score(("set", "a"), "jazz")
    assert lm.score(("<s>",), "unseenword") < lm.score(("<s>",), "jazz")


def test_bad_arpa_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        NgramLM(tmp_path / "none.arpa")
    (tmp_path / "x.arpa").write_text("hello\n")
    with pytest.raises(UserError, match="x.arpa:1: malformed"):
        NgramLM(tmp_path / "x.arpa")
