"""Corpus text, generator 2: a 7,000-word voice-assistant domain with held-out words and templates.

What changes from generator 1 (`_text.py`, the shipped model's corpus):
  * word lists grow from 1,499 to ~7,000 words: names, surnames, cities, countries and states,
    and common nouns, verbs, adjectives and adverbs (data/words/*.txt, from WordNet, Faker and
    GeoNames; scripts/build_wordlists.py), plus the curated domain lists of generator 1;
  * more templates: phone numbers, addresses, dates with years, money, dictation;
  * held out from training, so test speech brings new words, not only new combinations:
    about 10% of the open-class entries (names, places, nouns, ...) are test-only and 10%
    dev-only, by a CRC of the entry; likewise about 10% / 10% of the templates. Train
    sentences use only train entries and templates; a dev or test sentence draws a held-out
    entry for an open slot with probability HELD_OUT_SHARE.
A sentence's split: test if it used a test-only entry or template, dev if a dev-only one, else
the CRC of its text (as generator 1). Train and test text never share a sentence.
"""

from __future__ import annotations

import functools
import random
import re
import zlib
from importlib import resources

from . import _wordlists as W
from ._text import SPLITS, _time_words, normalize_text, number_words, sentence_split

HELD_OUT_SHARE = 0.35


@functools.lru_cache(maxsize=None)
def shipped_words(name: str) -> tuple[str, ...]:
    """One shipped list (data/words/NAME.txt): an entry per line, '#' lines are comments."""
    text = resources.files("asrcompress.data").joinpath("words", f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _merge(*lists) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_text(e) for lst in lists for e in lst if normalize_text(e)))


@functools.lru_cache(maxsize=None)
def open_lists() -> dict[str, tuple[str, ...]]:
    """Slot -> entries, for the slots whose entries can be held out."""
    return {
        "name": _merge(W.words(W.FIRST_NAMES), shipped_words("first_names")),
        "last": _merge(W.words(W.LAST_NAMES), shipped_words("last_names")),
        "city": _merge(W.words(W.CITIES), shipped_words("cities")),
        "country": _merge(W.words(W.COUNTRIES), shipped_words("countries")),
        "state": shipped_words("states"),
        "noun": _merge(W.words(W.NOUNS), shipped_words("nouns")),
        "verb": _merge(W.words(W.VERBS), shipped_words("verbs")),
        "adj": _merge(W.words(W.ADJECTIVES), shipped_words("adjectives")),
        "adv": _merge(shipped_words("adverbs")),
        "food": _merge(W.words(W.FOODS)),
        "item": _merge(W.words(W.HOUSEHOLD)),
        "app": _merge(W.words(W.APPS)),
        "genre": _merge(W.words(W.GENRES)),
    }


CLOSED = {"device": W.DEVICES, "room": W.ROOMS, "color": W.COLORS, "day": W.DAYS, "month": W.MONTHS,
          "when_adv": W.ADVERBS}


def _bucket(kind: str, text: str) -> str:
    b = zlib.crc32(f"{kind}:{text}".encode()) % 10
    return "test" if b == 0 else "dev" if b == 1 else "train"


def entry_split(entry: str) -> str:
    """Which split may use an open-class entry: ~10% test-only, ~10% dev-only, the rest any."""
    return _bucket("word", entry)


def template_split(template: str) -> str:
    return _bucket("template", template)


@functools.lru_cache(maxsize=None)
def _pools() -> dict[str, dict[str, tuple[str, ...]]]:
    return {slot: {s: tuple(e for e in entries if entry_split(e) == s) for s in SPLITS}
            for slot, entries in open_lists().items()}


@functools.lru_cache(maxsize=None)
def _plurals() -> dict[str, str]:
    return dict(line.split() for line in shipped_words("plurals"))


def plural(noun: str) -> str:
    irregular = _plurals().get(noun)
    if irregular:
        return irregular
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


def _digits(r: random.Random, n: int) -> str:
    return " ".join(W.ONES[r.randint(0, 9)] if r.random() > 0.1 else "oh" for _ in range(n))


class _Fill:
    """Slot fillers for one sentence of one split; records which held-out items it used."""

    def __init__(self, r: random.Random, split: str) -> None:
        self.r, self.split = r, split
        self.used: set[str] = set()  # the held-out splits whose entries this sentence drew

    def entry(self, slot: str) -> str:
        pools, r = _pools()[slot], self.r
        held = pools[self.split] if self.split != "train" else ()
        if held and r.random() < HELD_OUT_SHARE:
            self.used.add(self.split)
            return r.choice(held)
        return r.choice(pools["train"])

    def __call__(self, slot: str) -> str:
        r = self.r
        if slot in open_lists():
            return self.entry(slot)
        if slot == "nouns":
            return plural(self.entry("noun"))
        if slot == "verbs":  # third person: the same spelling rules as a plural
            return plural(self.entry("verb"))
        if slot in CLOSED:
            return r.choice(W.words(CLOSED[slot]))
        if slot == "num":
            return number_words(r.choice([r.randint(1, 20), r.randint(1, 100), r.randint(100, 9999)]))
        if slot == "small":
            return number_words(r.randint(2, 60))
        if slot == "year":
            return r.choice([number_words(r.randint(19, 20)) + " " + number_words(r.randint(10, 99)),
                             "two thousand " + number_words(r.randint(1, 9)), number_words(r.randint(2000, 2030))])
        if slot == "time":
            return _time_words(r)
        if slot == "date":
            month, day = r.choice(W.words(W.MONTHS)), r.choice(W.ORDINALS)
            return r.choice([f"{month} {day}", f"the {day} of {month}"])
        if slot == "phone":
            return f"{_digits(r, 3)} {_digits(r, 3)} {_digits(r, 4)}"
        if slot == "code":
            return f"{r.choice('abcdefghjkmnprstuvwxyz')} {_digits(r, r.randint(2, 4))}"
        if slot == "money":
            return f"{number_words(r.randint(1, 999))} dollars" + (
                f" and {number_words(r.randint(1, 99))} cents" if r.random() < 0.5 else "")
        if slot == "percent":
            return number_words(r.choice(range(5, 101, 5))) + " percent"
        if slot == "temp":
            return number_words(r.randint(0, 40)) + " degrees"
        if slot == "unit":
            return r.choice(["minutes", "seconds", "hours"])
        if slot == "when":
            return r.choice([r.choice(W.words(W.ADVERBS)), "on " + r.choice(W.words(W.DAYS)), "at " + _time_words(r),
                             "next " + r.choice(W.words(W.DAYS)), f"in {number_words(r.randint(2, 45))} minutes",
                             "this " + r.choice(["morning", "afternoon", "evening", "weekend"])])
        raise KeyError(slot)


# Templates: format strings over the slots above ({nouns}: a plural noun). Generator 1's
# templates come first (with its slot names), then new ones.
TEMPLATES: tuple[str, ...] = (
    # commands
    "set a timer for {small} {unit}", "set an alarm for {time}", "wake me up at {time} {when}",
    "turn on the {device} in the {room}", "turn off the {room} {device}", "switch off the {device}",
    "dim the {room} lights to {percent}", "set the thermostat to {temp}", "set the volume to {percent}",
    "open {app}", "close {app} and open {app}", "play some {genre} music", "play {genre} in the {room}",
    "call {name} {last}", "call {name} on speaker", "send a message to {name} saying i will be {adj} {when}",
    "text {name} that i'm running late", "remind me to {verb} the {noun} {when}",
    "remind me to buy {food} and {food}", "add {food} to my shopping list", "put {item} on my shopping list",
    "navigate to {city}", "start a {small} minute timer", "cancel my {noun} {when}",
    "book a table for {small} at {time}", "show me photos from {city}", "find a {food} recipe",
    "order {num} {food} for delivery {when}", "take a note {verb} the {noun}",
    "schedule a {noun} with {name} {when}", "move my {noun} to {date}", "set the {room} {device} to {color}",
    "call {name} {last} at {phone}", "dial {phone}", "save {phone} as {name}'s number",
    "navigate to {num} {last} street in {city}", "get directions to {city} {state}",
    "book a flight from {city} to {city} on {date}", "find hotels in {city} for {small} nights",
    "check in for flight {code}", "track my package {code}", "pay {name} {money}",
    "transfer {money} to {name} {last}", "split the bill with {name} and {name}",
    "add {noun} to my {noun} list", "set a reminder for {date} at {time}", "read me the news from {country}",
    "translate {noun} into {country} language", "email {name} the {adj} {noun}",
    "share my location with {name}", "call the nearest {noun}", "find a {adj} {noun} near me",
    # questions
    "what time is it in {city}", "what's the weather like in {city} {when}", "will it rain in {city} {when}",
    "how far is {city} from {city}", "how long does it take to drive to {city}", "what is {num} plus {num}",
    "what is {num} times {small}", "how many {unit} are in {num} days", "when is my next {noun}",
    "what's on my calendar {when}", "is the {device} in the {room} on", "what is the capital of {country}",
    "how do you say {noun} in spanish", "did {name} send me a message", "where is the nearest {noun}",
    "how much does a {noun} cost in {country}", "what day is {date}", "when does the {noun} open {when}",
    "how hot will it be in {city} on {day}", "what's the population of {city}",
    "who won the {noun} in {year}", "how do i get to {city} from {city}", "what is the time zone in {state}",
    "how many {nouns} are in a {noun}", "what does {adj} mean", "how do you spell {noun}",
    "is {name} {last} available {when}", "what's the exchange rate in {country}",
    "when was {name} {last} born", "where did i park the {noun}", "how old is {name}",
    # dictation
    "the {noun} was {adj} and the {noun} was {adj}", "i think we should {verb} the {noun} before {day}",
    "{name} said the {noun} will be ready {when}", "please {verb} the {noun} and {verb} the {noun}",
    "we need to {verb} the {noun} by the end of {month}", "my {noun} is in {city} until {date}",
    "the {adj} {noun} from {city} arrived {when}", "thank you for the {adj} {noun} {name}",
    "i will {verb} you {when} after the {noun}", "don't forget to {verb} the {noun} {when}",
    "the {noun} costs {money}", "{name} and {name} are going to {city} in {month}",
    "we met at the {noun} in {year}", "let's {verb} the {noun} on {day} at {time}",
    "there are {num} {nouns} in the {noun}", "she moved from {country} to {city} last {noun}",
    "he was born on {date} {year}", "i'm sorry i missed your {noun} {name}",
    "dear {name} i hope the {noun} went {adv} well", "the {adj} {nouns} in {city} are {adj}",
    "{name} {last} will {verb} the {nouns} {when}", "our {noun} in {state} is {adv} {adj}",
    "my new number is {phone}", "the meeting moved to {date} {year} at {time}",
    "please send the {nouns} to {num} {last} road {city}", "we spent {money} on {nouns} and {food}",
    "the {noun} and the {noun} were {adv} {adj}", "{name} thinks the {noun} is too {adj}",
    "can you {verb} the {nouns} before {name} arrives", "i saw {name} at the {noun} in {city}",
    "the {adj} {noun} will {verb} {adv}", "remember that {name} {verbs} the {nouns} on {day}",
    "they sold {num} {nouns} in {month}", "the reference number is {code}",
)
_SLOT = re.compile(r"{(\w+)}")


def generate_sentences_v2(split: str, n: int, seed: int) -> list[str]:
    """n distinct sentences of `split`, deterministic for (split, n, seed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    r = random.Random(f"text2:{seed}:{split}")
    own = [t for t in TEMPLATES if template_split(t) == split] if split != "train" else []
    shared = [t for t in TEMPLATES if template_split(t) == "train"]
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct {split} sentences")
        template = r.choice(own) if own and r.random() < HELD_OUT_SHARE else r.choice(shared)
        fill = _Fill(r, split)
        text = normalize_text(_SLOT.sub(lambda m: fill(m.group(1)), template))
        held = fill.used | ({template_split(template)} - {"train"})
        if len(held) > 1 or (held and held != {split}) or text in seen:
            continue
        if not held and sentence_split(text) != split:
            continue  # no held-out item: the text's CRC decides, as in generator 1
        seen.add(text)
        out.append(text)
    return out


def domain_vocabulary_v2() -> set[str]:
    """Every word generator 2 can produce, held-out entries included."""
    vocab = closed_vocabulary()
    for entries in open_lists().values():
        for e in entries:
            vocab.update(e.split())
    vocab.update(plural(n) for n in (*open_lists()["noun"], *open_lists()["verb"]))
    return vocab


def closed_vocabulary() -> set[str]:
    """The words generator 2 says whatever entries it draws: templates, closed lists, numbers."""
    vocab: set[str] = set()
    for block in (*CLOSED.values(), W.PHRASE_WORDS):
        vocab.update(normalize_text(block).split())
    vocab.update(normalize_text(" ".join(W.ONES + W.TEENS + W.TENS[2:] + W.ORDINALS)).split())
    vocab.update(["hundred", "thousand", "dollars", "cents", "spanish", "oh"])
    for t in TEMPLATES:
        vocab.update(normalize_text(_SLOT.sub(" ", t)).split())
    return vocab
