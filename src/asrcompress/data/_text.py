"""Sentence generator for the built-in voice-assistant domain.

Sentences come from templates whose slots draw on the shipped word lists. Which split a
sentence belongs to is a pure function of its text (a CRC of it), so train and test
sentences never overlap, whatever the seed or corpus size.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable

from . import _wordlists as W

SPLITS = ("train", "dev", "test")
_ALLOWED = re.compile(r"[^a-z' ]+")


def normalize_text(text: str) -> str:
    """Lower-case, map hyphens to spaces, drop characters outside [a-z' ]."""
    text = text.lower().replace("-", " ")
    return " ".join(_ALLOWED.sub(" ", text).split())


def sentence_split(text: str) -> str:
    """Deterministic split of a sentence: ~10% test, ~10% dev, the rest train."""
    bucket = zlib.crc32(normalize_text(text).encode()) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def number_words(n: int) -> str:
    """English words for 0 <= n < 10000, as a speaker would say them."""
    if n < 10:
        return W.ONES[n]
    if n < 20:
        return W.TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return W.TENS[tens] + ("" if ones == 0 else " " + W.ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = W.ONES[hundreds] + " hundred"
        return head if rest == 0 else head + " and " + number_words(rest)
    thousands, rest = divmod(n, 1000)
    head = number_words(thousands) + " thousand"
    return head if rest == 0 else head + " " + number_words(rest)


def _time_words(r: random.Random) -> str:
    hour = r.randint(1, 12)
    minute = r.choice([0, 0, 5, 10, 15, 20, 30, 45, r.randint(1, 59)])
    if minute == 0:
        body = number_words(hour) + r.choice([" o'clock", "", ""])
    elif minute < 10:
        body = f"{number_words(hour)} oh {number_words(minute)}"
    elif minute == 15 and r.random() < 0.5:
        return f"quarter past {number_words(hour)}"
    elif minute == 30 and r.random() < 0.5:
        return f"half past {number_words(hour)}"
    else:
        body = f"{number_words(hour)} {number_words(minute)}"
    return body + r.choice([" am", " pm", " in the morning", " in the evening", ""])


class _Pick:
    """Slot fillers bound to one random stream."""

    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.lists = {
            "name": W.words(W.FIRST_NAMES),
            "last": W.words(W.LAST_NAMES),
            "city": W.words(W.CITIES),
            "country": W.words(W.COUNTRIES),
            "food": W.words(W.FOODS),
            "item": W.words(W.HOUSEHOLD),
            "device": W.words(W.DEVICES),
            "room": W.words(W.ROOMS),
            "app": W.words(W.APPS),
            "genre": W.words(W.GENRES),
            "color": W.words(W.COLORS),
            "day": W.words(W.DAYS),
            "month": W.words(W.MONTHS),
            "noun": W.words(W.NOUNS),
            "verb": W.words(W.VERBS),
            "adj": W.words(W.ADJECTIVES),
            "adv": W.words(W.ADVERBS),
        }

    def __call__(self, slot: str) -> str:
        r = self.r
        if slot in self.lists:
            return r.choice(self.lists[slot])
        if slot == "num":
            return number_words(r.choice([r.randint(1, 20), r.randint(1, 100), r.randint(100, 999)]))
        if slot == "small":
            return number_words(r.randint(2, 60))
        if slot == "year":
            return number_words(r.randint(19, 20)) + " " + number_words(r.randint(10, 99))
        if slot == "time":
            return _time_words(r)
        if slot == "date":
            return f"{r.choice(self.lists['month'])} {r.choice(W.ORDINALS)}"
        if slot == "when":
            return r.choice(
                [
                    r.choice(self.lists["adv"]),
                    "on " + r.choice(self.lists["day"]),
                    "at " + _time_words(r),
                    "next " + r.choice(self.lists["day"]),
                    "this " + r.choice(["morning", "afternoon", "evening", "weekend"]),
                    f"in {number_words(r.randint(2, 45))} minutes",
                ]
            )
        if slot == "unit":
            return r.choice(["minutes", "seconds", "hours"])
        if slot == "percent":
            return number_words(r.choice(range(5, 101, 5))) + " percent"
        if slot == "temp":
            return number_words(r.randint(15, 30)) + " degrees"
        raise KeyError(slot)


# Each template is a format string over the slots in _Pick.
_TEMPLATES: dict[str, list[str]] = {
    "command": [
        "set a timer for {small} {unit}",
        "set an alarm for {time}",
        "wake me up at {time} {when}",
        "turn on the {device} in the {room}",
        "turn off the {room} {device}",
        "switch off the {device}",
        "dim the {room} lights to {percent}",
        "set the thermostat to {temp}",
        "set the volume to {percent}",
        "open {app}",
        "close {app} and open {app}",
        "play some {genre} music",
        "play {genre} in the {room}",
        "call {name} {last}",
        "call {name} on speaker",
        "send a message to {name} saying i will be {adj} {when}",
        "text {name} that i'm running late",
        "remind me to {verb} the {noun} {when}",
        "remind me to buy {food} and {food}",
        "add {food} to my shopping list",
        "add {food} {food} and {item} to the list",
        "put {item} on my shopping list",
        "navigate to {city}",
        "start a {small} minute timer",
        "lock the {device} and turn off the lights",
        "cancel my {noun} {when}",
        "book a table for {small} at {time}",
        "skip this song",
        "pause the music and turn up the {device}",
        "show me photos from {city}",
        "find a {food} recipe",
        "order {num} {food} for delivery {when}",
        "take a note {verb} the {noun}",
        "schedule a {noun} with {name} {when}",
        "move my {noun} to {date}",
        "set the {room} {device} to {color}",
    ],
    "question": [
        "what time is it in {city}",
        "what's the weather like in {city} {when}",
        "will it rain in {city} {when}",
        "how far is {city} from {city}",
        "how long does it take to drive to {city}",
        "what is {num} plus {num}",
        "what is {num} times {small}",
        "how many {unit} are in {num} days",
        "when is my next {noun}",
        "who is calling me",
        "what's on my calendar {when}",
        "is the {device} in the {room} on",
        "what is the capital of {country}",
        "how do you say {noun} in spanish",
        "did {name} send me a message",
        "where is the nearest {noun}",
        "how much does a {noun} cost in {country}",
        "what day is {date}",
        "when does the {noun} open {when}",
        "can you read my {noun} from {name}",
        "how hot will it be in {city} on {day}",
        "what's the temperature in the {room}",
    ],
    "dictation": [
        "the {noun} was {adj} and the {noun} was {adj}",
        "i think we should {verb} the {noun} before {day}",
        "{name} said the {noun} will be ready {when}",
        "please {verb} the {noun} and {verb} the {noun}",
        "we need to {verb} the {noun} by the end of {month}",
        "my {noun} is in {city} until {date}",
        "the {adj} {noun} from {city} arrived {when}",
        "thank you for the {adj} {noun} {name}",
        "i will {verb} you {when} after the {noun}",
        "don't forget to {verb} the {noun} {when}",
        "the {noun} costs {num} dollars and {small} cents",
        "{name} and {name} are going to {city} in {month}",
        "we met at the {noun} in {year}",
        "let's {verb} the {noun} on {day} at {time}",
        "it was a {adj} {noun} but the {noun} was {adj}",
        "can you {verb} my {noun} while i {verb} the {noun}",
        "there are {num} {noun}s in the {noun}",
        "she moved from {country} to {city} last {noun}",
        "the {color} {noun} is next to the {noun}",
        "our {noun} starts at {time} on {date}",
        "he was born on {date} {year}",
        "i'm sorry i missed your {noun} {name}",
    ],
}
_SLOT = re.compile(r"{(\w+)}")


def _fill(template: str, pick: Callable[[str], str]) -> str:
    return normalize_text(_SLOT.sub(lambda m: pick(m.group(1)), template))


def generate_sentences(split: str, n: int, seed: int) -> list[str]:
    """n distinct sentences that belong to `split`, deterministic for (split, n, seed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    r = random.Random(f"text:{seed}:{split}")
    pick = _Pick(r)
    kinds = list(_TEMPLATES)
    weights = [0.4, 0.25, 0.35]
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct {split} sentences")
        kind = r.choices(kinds, weights)[0]
        text = _fill(r.choice(_TEMPLATES[kind]), pick)
        if text in seen or sentence_split(text) != split:
            continue
        seen.add(text)
        out.append(text)
    return out


def domain_vocabulary() -> set[str]:
    """Every word a template can produce: the decoder's lexicon for the built-in domain."""
    vocab: set[str] = set()
    for block in (
        W.FIRST_NAMES, W.LAST_NAMES, W.CITIES, W.COUNTRIES, W.FOODS, W.HOUSEHOLD,
        W.DEVICES, W.ROOMS, W.APPS, W.GENRES, W.COLORS, W.DAYS, W.MONTHS, W.NOUNS,
        W.VERBS, W.ADJECTIVES, W.ADVERBS, W.PHRASE_WORDS,
    ):
        vocab.update(normalize_text(block).split())
    vocab.update(normalize_text(" ".join(W.ONES + W.TEENS + W.TENS[2:] + W.ORDINALS)).split())
    vocab.update(["hundred", "thousand", "dollars", "cents", "spanish"])
    for templates in _TEMPLATES.values():
        for t in templates:
            vocab.update(normalize_text(_SLOT.sub(" ", t)).split())
    vocab.update(n + "s" for n in normalize_text(W.NOUNS).split())
    return vocab
