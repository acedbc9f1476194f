from hypothesis import given, strategies as st

from asrcompress.data import domain_vocabulary, generate_sentences, normalize_text, sentence_split
from asrcompress.data._text import number_words


def test_generation_is_deterministic_for_a_seed():
    assert generate_sentences("train", 200, seed=3) == generate_sentences("train", 200, seed=3)
    assert generate_sentences("train", 200, seed=3) != generate_sentences("train", 200, seed=4)


def test_train_and_test_sentences_never_overlap_across_seeds():
    train = set(generate_sentences("train", 3000, seed=0))
    for seed in (0, 1, 99):
        test = generate_sentences("test", 300, seed=seed)
        assert not train & set(test)
        assert all(sentence_split(t) == "test" for t in test)


def test_vocabulary_has_at_least_1000_words_and_covers_generated_text():
    vocab = domain_vocabulary()
    assert len(vocab) >= 1000
    train_words = {w for s in generate_sentences("train", 5000, seed=0) for w in s.split()}
    assert len(train_words) >= 1000
    assert train_words <= vocab


@given(st.integers(min_value=0, max_value=9999))
def test_number_words_use_only_vocabulary_words(n):
    words = number_words(n).split()
    assert words and set(words) <= domain_vocabulary()


def test_number_words_known_values():
    assert number_words(0) == "zero"
    assert number_words(42) == "forty two"
    assert number_words(305) == "three hundred and five"
    assert number_words(2024) == "two thousand twenty four"


def test_normalize_text():
    assert normalize_text("Set a TIMER, for 5-minutes!") == "set a timer for minutes"
    assert normalize_text("twenty-first") == "twenty first"
    assert normalize_text("don't") == "don't"
