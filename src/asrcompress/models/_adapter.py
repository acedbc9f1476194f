"""Model families: the `AcousticModel` adapter protocol and the architecture registry.

Everything outside `models/` reaches a model through its adapter, never through its class:
what it eats (`FeatureSpec`), how it turns audio into log-probabilities and how many frames
come out (`log_probs`, `output_length`), its vocabulary, the blocks structured methods cut
(`blocks`), the single-utterance graph that ONNX export writes (`deploy`), and how its folder's
config.json describes it (`build` / `config`). A new family is one module that subclasses
`AcousticModel` and calls `register_architecture` (tests/test_extensions.py registers a toy one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data import LogMel, num_frames
from ..errors import UserError
from ._tokens import BLANK, SEP, TOKENS

FEATURE_KINDS = ("log_mel", "waveform")


@dataclass(frozen=True)
class FeatureSpec:
    """What the deployed graph eats. log_mel: (1, T, n_mels) normalised log-mel frames,
    T = 1 + S // 160; waveform: (1, S) samples, zero-mean unit-variance when `normalize`."""

    kind: str
    sample_rate: int = 16_000
    n_mels: int = 0
    normalize: bool = False
    input_name: str = "feats"

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind {self.kind!r} is not one of {', '.join(FEATURE_KINDS)}")
        if self.kind == "log_mel" and self.n_mels < 1:
            raise ValueError("log_mel features need n_mels >= 1")

    def steps(self, samples: int) -> int:
        """Time steps of the graph's input for `samples` of audio."""
        return num_frames(samples) if self.kind == "log_mel" else samples

    def shape(self, steps: int) -> tuple[int, ...]:
        """The graph input's shape for one utterance of `steps` time steps."""
        return (1, steps, self.n_mels) if self.kind == "log_mel" else (1, steps)

    def shape_for(self, seconds: float) -> tuple[int, ...]:
        return self.shape(self.steps(int(round(seconds * self.sample_rate))))

    def example(self, steps: int) -> torch.Tensor:
        """A random input of `steps` time steps, shaped as the graph's input."""
        return torch.randn(*self.shape(steps))

    @classmethod
    def of_graph(cls, name: str, shape: list) -> "FeatureSpec":
        """The spec of an exported graph's input (what a bare .onnx file says of itself):
        (1, T, F) is log-mel with F bins, (1, S) a waveform."""
        if len(shape) == 3 and isinstance(shape[2], int):
            return cls("log_mel", n_mels=shape[2], input_name=name)
        if len(shape) == 2:
            return cls("waveform", input_name=name)
        raise UserError(f"graph input {name!r} of shape {shape} is neither (1, T, n_mels) features nor (1, S) samples")

    def dynamic_axis(self) -> int:
        return 1

    @torch.no_grad()
    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """One utterance's samples -> the graph's input, computed as training computed it."""
        if self.kind == "log_mel":
            feats, _ = _logmel(self.sample_rate, self.n_mels)(torch.from_numpy(wave)[None].float(),
                                                               torch.tensor([wave.size]))
            return feats.numpy()
        x = np.asarray(wave, dtype=np.float32)[None]
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return x.astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


_LOGMEL: dict[tuple[int, int], LogMel] = {}


def _logmel(sample_rate: int, n_mels: int) -> LogMel:
    key = (sample_rate, n_mels)
    if key not in _LOGMEL:
        _LOGMEL[key] = LogMel(sample_rate, n_mels).eval()
    return _LOGMEL[key]


@dataclass(frozen=True)
class Vocabulary:
    """CTC output units: token strings by index, the blank's index, the word delimiter token.

    Transcripts are lower-case words split by single spaces, whatever the case of the tokens;
    `<...>` tokens (pad, unk, bos, eos) are not text. A sentencepiece word start (U+2581) is a space."""

    tokens: tuple[str, ...]
    blank: int = 0
    delimiter: str | None = "|"

    @property
    def characters(self) -> bool:
        """Every text token is one character: a lexicon can spell words in it (beam + LM decoding)."""
        return all(len(t) == 1 for i, t in enumerate(self.tokens)
                   if i != self.blank and t != self.delimiter and not _special(t))

    def text(self, ids: list[int]) -> str:
        """Collapsed CTC ids (no repeats, no blanks) -> 'words like this'."""
        parts = []
        for i in ids:
            t = self.tokens[i]
            if t == self.delimiter:
                parts.append(" ")
            elif i != self.blank and not _special(t):
                parts.append(t.replace("\u2581", " "))
        return " ".join("".join(parts).lower().split())

    def greedy(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best path: argmax per frame, merge repeats, drop blanks. (N, T, V) -> N transcripts."""
        texts = []
        for row, n in zip(log_probs.argmax(dim=-1).tolist(), lengths.tolist()):
            ids, prev = [], None
            for t in row[:n]:
                if t != prev and t != self.blank:
                    ids.append(t)
                prev = t
            texts.append(self.text(ids))
        return texts

    def spell(self, word: str) -> list[str] | None:
        """A lower-case word as this vocabulary's character tokens ('hi' -> ['H', 'I'] for an
        upper-case one); None when a character has no token."""
        index = set(self.tokens)
        out = []
        for c in word:
            t = c if c in index else c.upper() if c.upper() in index else None
            if t is None or t == self.delimiter or self.tokens.index(t) == self.blank:
                return None
            out.append(t)
        return out

    def ids_of(self, tokens: tuple[str, ...], separator: str) -> torch.Tensor:
        """For each of `tokens` (another vocabulary's characters, `separator` its word break), its id
        here, or -1: CTC targets encoded in that vocabulary become targets of this one."""
        index = {t: i for i, t in enumerate(self.tokens)}
        lower = {t.lower(): i for t, i in index.items() if len(t) == 1 and t.lower() not in index}
        out = []
        for t in tokens:
            if t == separator:
                out.append(index.get(self.delimiter, -1) if self.delimiter else -1)
            else:
                out.append(index.get(t, lower.get(t, index.get(t.upper(), -1))))
        return torch.tensor(out)


    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens), "blank": self.blank, "delimiter": self.delimiter}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(tuple(d["tokens"]), int(d["blank"]), d.get("delimiter"))


# The built-in character vocabulary (the shipped model's, and any folder that names no other).
CHARACTERS = Vocabulary(TOKENS, TOKENS.index(BLANK), SEP)


def _special(token: str) -> bool:
    return len(token) > 2 and token.startswith("<") and token.endswith(">")


@dataclass(frozen=True)
class BlockSpec:
    """A unit of structure that structured methods cut, named by module paths.

    kind and roles (attribute names under `parent`):
      ffn    first: Linear(d, F), second: Linear(F, d)                 units: F neurons
      conv   first: Conv1d(d, 2C, 1), depthwise, norm, second          units: C channels (GLU)
      attn   attn: a packed nn.MultiheadAttention                       units: heads
      conv2d first: Conv2d(., c, k, s), second: the Conv2d or Linear fed by it (channel-major)
    The block is named by its producer layer (`first`), as a policy rule names it."""

    kind: str
    parent: str
    roles: Mapping[str, str] = field(default_factory=dict)

    @property
    def first(self) -> str:
        """The layer name a policy rule uses for this block."""
        prefix = f"{self.parent}." if self.parent else ""
        if self.kind == "attn":
            return f"{prefix}{self.roles['attn']}.in_proj"
        return f"{prefix}{self.roles['first']}"


class AcousticModel:
    """The adapter protocol: how the rest of asrcompress uses one model family.

    Subclasses set `name` (config.json's `architecture`) and `module` (the nn.Module class
    they adapt) and implement the methods below; `register_architecture` makes them known."""

    name: ClassVar[str] = ""
    module: ClassVar[type[nn.Module]] = nn.Module
    savable: ClassVar[bool] = True  # build()/config() round-trip a model folder's config.json

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether `model` is of this family (for a model without an `architecture` attribute)."""
        return isinstance(model, cls.module)

    # -- the model folder
    def build(self, config: dict) -> nn.Module:
        """A fresh model from config.json's `model` field (raise ValueError/TypeError naming the field)."""
        raise NotImplementedError

    def config(self, model: nn.Module) -> dict:
        """config.json's `model` field for `model`."""
        raise NotImplementedError

    # -- what it eats and gives
    def features(self, model: nn.Module) -> FeatureSpec:
        raise NotImplementedError

    def vocabulary(self, model: nn.Module) -> Vocabulary:
        raise NotImplementedError

    def log_probs(self, model: nn.Module, wave: torch.Tensor, lengths: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S) samples and (N,) lengths -> (N, T', V) log-probabilities and (N,) output lengths."""
        raise NotImplementedError

    def output_length(self, model: nn.Module, samples: int) -> int:
        """T' for an utterance of `samples` samples: the family's shape formula."""
        raise NotImplementedError

    # -- structure
    def blocks(self, model: nn.Module) -> list[BlockSpec]:
        """The blocks structured methods may cut (empty: none)."""
        return []

    def depth_blocks(self, model: nn.Module) -> list[str]:
        """Module paths of the residual blocks depth pruning may bypass, in order (empty: none)."""
        return []

    def bypass(self, model: nn.Module, path: str) -> None:
        """Replace the block at `path` by one that passes its input through (the model's depth
        shrinks; the other blocks keep their names)."""
        raise NotImplementedError(f"{self.name}: depth pruning is not supported")

    def not_deployed(self, model: nn.Module) -> tuple[str, ...]:
        """State-dict prefixes the deployed graph does not hold (e.g. the filterbank the app derives)."""
        return ()

    # -- deployment
    def deploy(self, model: nn.Module) -> nn.Module:
        """A module for one utterance: the FeatureSpec's input (1, steps, ...) -> (1, T', V)
        log-probabilities, without padding masks. Export rewrites its layers for fast kernels."""
        raise NotImplementedError

    def output_name(self) -> str:
        return "logprobs"


ARCHITECTURES: dict[str, AcousticModel] = {}


def register_architecture(adapter_cls: type[AcousticModel]) -> type[AcousticModel]:
    """Class decorator: registers one instance of the adapter under its `name`."""
    if not adapter_cls.name:
        raise ValueError(f"{adapter_cls.__name__}: an adapter needs a `name`")
    ARCHITECTURES[adapter_cls.name] = adapter_cls()
    return adapter_cls


def unregister_architecture(name: str) -> None:
    ARCHITECTURES.pop(name)


def adapter_for(model: nn.Module) -> AcousticModel:
    """The adapter of `model`'s family: by its `architecture` attribute, else by its class."""
    name = getattr(model, "architecture", None)
    if isinstance(name, str) and name in ARCHITECTURES:
        return ARCHITECTURES[name]
    for adapter in ARCHITECTURES.values():
        if adapter.matches(model):
            return adapter
    raise UserError(f"{type(model).__name__}: no registered model family adapts this model "
                    f"(known: {', '.join(sorted(ARCHITECTURES))})")


def find_adapter(model: nn.Module) -> AcousticModel | None:
    """`adapter_for`, or None for a module of no registered family (e.g. a bare test network)."""
    try:
        return adapter_for(model)
    except UserError:
        return None


def architecture(name: str) -> AcousticModel:
    if name not in ARCHITECTURES:
        raise UserError(f"architecture {name!r} is not one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def log_probs(model: nn.Module, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S) samples -> (N, T', V) log-probabilities and output lengths, for any registered family."""
    return adapter_for(model).log_probs(model, wave, lengths)


def features_of(model: nn.Module) -> FeatureSpec:
    """What `model`'s deployed graph eats."""
    return adapter_for(model).features(model)


def config_from_dict(cls: type, d: Any, what: str):
    """A frozen config dataclass from a dict, refusing unknown fields (names them)."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} fields: {sorted(unknown)}")
    return cls(**d)
