"""A study's settings: written into the study when it is created, read by every worker.

Everything that changes how a trial is scored lives here, by content (the space's YAML, each
profile's fields) or by fingerprint (the base model's and the corpus's sha256), so a worker
joining from another machine needs only --study and --storage, and resuming with another
model, corpus, space or profiles is refused instead of silently mixing two experiments.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import optuna
import yaml

from ..errors import UserError
from ..hardware import Profile, parse_profile
from ..models import DECODER_FILES
from ._space import Space, parse_space
from ._study import heartbeat_interval

SETTINGS_ATTR = "settings"
STRATEGY_ATTR = "strategy"  # "staged" on a staged search's study (absent: one-stage)
STAGED = "staged"
STAGED_RECORD = "staged.json"  # in the study's folder: a staged search's settings and options, once started


def is_staged(study: optuna.Study) -> bool:
    """A staged search's study: its trials are finalists, read through `finalists.json`."""
    return study.user_attrs.get(STRATEGY_ATTR) == STAGED
SETTINGS_VERSION = 1
MODEL_FILES = ("config.json", "model.safetensors", "model.pt", "model.pth", "pytorch_model.bin",
               "compression.json", *DECODER_FILES)  # what loading and decoding read
MANIFESTS = ("train.jsonl", "dev.jsonl", "test.jsonl")
FLAGS = {"dev_utterances": "--dev-utterances", "kd_utterances": "--kd-utterances",
         "heartbeat_grace_s": "--heartbeat-grace"}


def _sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_sha256(model_dir: Path) -> str:
    model_dir = Path(model_dir)
    files = [model_dir / n for n in MODEL_FILES if (model_dir / n).is_file()]
    if not files:
        raise UserError(f"{model_dir}: model folder not found, or holds no {MODEL_FILES[0]}")
    return _sha256_files(files)


def corpus_fingerprint(corpus: Path) -> str:
    corpus = Path(corpus)
    files = [corpus / n for n in MANIFESTS if (corpus / n).is_file()]
    if not (corpus / "dev.jsonl").is_file():
        raise UserError(f"{corpus / 'dev.jsonl'}: not found; --corpus must be a corpus folder with dev.jsonl")
    return _sha256_files(files)


@dataclass(frozen=True)
class SearchConfig:
    """The study's settings. `FIXED` fields may never change once the study exists; the rest
    (budget, sampler, tracking URI) may be changed by a resuming driver."""

    space_name: str
    space_yaml: str
    model: str
    model_sha256: str
    corpus: str
    corpus_fingerprint: str
    profiles: dict[str, dict]  # name -> the profile's fields
    workdir: str
    budget: int
    sampler: str = "tpe"
    tracking_uri: str = ""
    dev_utterances: int = 100
    kd_utterances: int = 2000
    decoder: dict = field(default_factory=lambda: {"kind": "greedy"})
    trial_timeout_s: float | None = None
    heartbeat_grace_s: float = 120.0  # a running trial with no heartbeat for this long is stale
    version: int = SETTINGS_VERSION

    FIXED = ("space", "model", "corpus", "profiles", "dev_utterances", "kd_utterances", "decoder", "trial_timeout_s",
             "heartbeat_grace_s")

    @property
    def heartbeat_interval_s(self) -> float:
        return heartbeat_interval(self.heartbeat_grace_s)

    def space(self) -> Space:
        return parse_space(yaml.safe_load(self.space_yaml), Path(f"{self.space_name}.yaml (stored in the study)"))

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise UserError(f"profile {name!r} is not one of the study's ({', '.join(self.profiles)})")
        return parse_profile(self.profiles[name], Path(f"{name}.yaml (stored in the study)"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        if doc.get("version") != SETTINGS_VERSION or set(doc) - known:
            raise UserError(f"the study's settings are of another asrcompress version ({doc.get('version')!r}); "
                            "use that version, or start a new study")
        return cls(**doc)

    def _value(self, name: str) -> object:
        if name == "space":
            return yaml.safe_load(self.space_yaml)
        if name == "model":
            return self.model_sha256
        if name == "corpus":
            return self.corpus_fingerprint
        return getattr(self, name)

    def differences(self, other: "SearchConfig", given: set[str]) -> list[str]:
        """The fixed settings among `given` (the ones the user named) where `other` differs."""
        out = []
        for name in self.FIXED:
            if name not in given or self._value(name) == other._value(name):
                continue
            if name in ("model", "corpus"):
                mine, theirs = (getattr(self, name), self._value(name)), (getattr(other, name), other._value(name))
                out.append(f"--{name} {theirs[0]} (sha256 {str(theirs[1])[:12]}) differs from the study's "
                           f"{mine[0]} (sha256 {str(mine[1])[:12]})")
            elif name in ("space", "profiles"):
                out.append(f"--{name} differs from the {name} stored in the study")
            elif name == "trial_timeout_s":
                minutes = [None if v is None else v / 60 for v in (other.trial_timeout_s, self.trial_timeout_s)]
                out.append(f"--trial-timeout {minutes[0]} differs from the study's {minutes[1]} (minutes)")
            else:
                flag = FLAGS.get(name, name)
                out.append(f"{flag} {getattr(other, name)!r} differs from the study's {getattr(self, name)!r}")
        return out


def build_settings(space_path: Path, model: Path, corpus: Path, profiles_dir: Path, workdir: Path, budget: int,
                   **options: object) -> SearchConfig:
    """A new study's settings, read from the files the user named."""
    from .._yaml import read_yaml

    space_path = Path(space_path)
    text = space_path.read_text() if space_path.is_file() else ""
    space = parse_space(read_yaml(space_path, "search space"), space_path)  # the one-line error for a bad space
    profiles = {}
    for name in space.profiles:
        path = Path(profiles_dir) / f"{name}.yaml"
        doc = read_yaml(path, "hardware profile")
        parse_profile(doc, path)
        profiles[name] = doc
    return SearchConfig(space_name=space_path.stem, space_yaml=text, model=str(Path(model).resolve()),
                        model_sha256=model_sha256(model), corpus=str(Path(corpus).resolve()),
                        corpus_fingerprint=corpus_fingerprint(corpus), profiles=profiles,
                        workdir=str(Path(workdir).resolve()), budget=budget, **options)


def study_settings(study: optuna.Study) -> SearchConfig:
    doc = study.user_attrs.get(SETTINGS_ATTR)
    if doc is None:
        raise UserError(f"study {study.study_name!r} holds no settings (made by an older asrcompress); start a new "
                        "study")
    return SearchConfig.from_dict(doc)


GIVEN_ALL = frozenset({"space", "model", "corpus", "profiles", "dev_utterances", "kd_utterances", "trial_timeout_s",
                       "heartbeat_grace_s", "budget", "sampler", "tracking_uri"})
_PLAIN = ("dev_utterances", "kd_utterances", "trial_timeout_s", "heartbeat_grace_s", "budget", "sampler", "tracking_uri")


def _options(cfg: dict, names) -> dict:
    return {k: cfg[k] for k in _PLAIN if k in names and cfg.get(k) is not None}


def settings_for(cfg: dict, stored: SearchConfig | None) -> SearchConfig:
    """The settings a driver runs with. A new study: built from `cfg` (paths and options). An
    existing one: the stored settings, with what the user gave (`cfg["given"]`, default: every
    key of `cfg`) applied; refused, naming the difference, if a fixed setting would change."""
    given = set(cfg.get("given", GIVEN_ALL))
    if stored is None:
        return build_settings(cfg["space"], cfg["model"], cfg["corpus"], cfg["profiles"], cfg["workdir"],
                              **_options(cfg, GIVEN_ALL))
    from .._yaml import read_yaml

    doc = stored.to_dict() | _options(cfg, given)
    if "model" in given:
        doc |= {"model": str(Path(cfg["model"]).resolve()), "model_sha256": model_sha256(cfg["model"])}
    if "corpus" in given:
        doc |= {"corpus": str(Path(cfg["corpus"]).resolve()), "corpus_fingerprint": corpus_fingerprint(cfg["corpus"])}
    if "space" in given:
        parse_space(read_yaml(cfg["space"], "search space"), Path(cfg["space"]))
        doc["space_yaml"] = Path(cfg["space"]).read_text()
    if "profiles" in given:
        doc["profiles"] = {n: read_yaml(Path(cfg["profiles"]) / f"{n}.yaml", "hardware profile")
                           for n in stored.profiles}
    requested = SearchConfig.from_dict(doc)
    diff = stored.differences(requested, given)
    if diff:
        raise UserError(f"study {cfg['study']!r}: {diff[0]}; resume without that option, or pick another --study")
    return requested
