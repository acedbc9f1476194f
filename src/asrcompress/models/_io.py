"""Model folders: model.safetensors + config.json (+ model_card.json, lexicon, LM)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from torch import nn

from .._json import read_json
from ..errors import UserError
from ._adapter import ARCHITECTURES, CHARACTERS, Vocabulary, adapter_for

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "model_card.json"
# Decoder assets a model folder carries (objectives/_decode reads them; a compressed model keeps them).
LEXICON_FILE, LM_FILE, CHAR_LM_FILE = "lexicon.txt", "lm.arpa", "lm_chars.arpa"
DECODER_FILES = (LEXICON_FILE, LM_FILE, CHAR_LM_FILE)
FORMAT_VERSION = 1
PICKLE_NAMES = ("model.pt", "model.pth", "pytorch_model.bin")
CONFIG_KEYS = frozenset({"format_version", "architecture", "model", "tokens", "sample_rate", "decoder"})
# A trained model's card (finalize) and an export bundle's card (export).
CARD_KEYS = frozenset({"architecture", "model_config", "parameters", "corpus", "training_command",
                       "training_time_seconds", "training_hardware", "training", "decoder", "wer", "cer",
                       "greedy_wer", "greedy_cer", "utterances", "scored_on", "lexicon_decoder", "lexicon_wer",
                       "out_of_lexicon", "finalize_command"})

TRUST_PICKLE_ENV = "ASRCOMPRESS_TRUST_PICKLE"


def save_model(model: nn.Module, out: Path, decoder: dict | None = None) -> None:
    adapter = adapter_for(model)
    if not adapter.savable:
        raise UserError(f"{type(model).__name__} ({adapter.name}): this family cannot be saved as a model folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(out / WEIGHTS)
    cfg = {"format_version": FORMAT_VERSION, "architecture": adapter.name, "model": adapter.config(model),
           "tokens": list(adapter.vocabulary(model).tokens), "sample_rate": adapter.features(model).sample_rate}
    if decoder is not None:
        cfg["decoder"] = decoder
    elif (out / CONFIG).exists():
        cfg["decoder"] = read_config(out).get("decoder")
    (out / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def read_config(model_dir: Path) -> dict:
    """config.json of a model folder. A Hugging Face folder's reads as {"architecture": "hf_ctc"}:
    it names no decoder settings, so its decoder is greedy until a user names another."""
    from ._hf_ctc import NAME, is_hf_folder

    path = Path(model_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{path}: not found; a model folder needs {CONFIG} and {WEIGHTS}")
    if is_hf_folder(model_dir):
        return {"architecture": NAME}
    return read_json(path, CONFIG_KEYS)


def folder_vocabulary(model_dir: Path) -> Vocabulary:
    """The CTC vocabulary of a model folder (ours, ours holding a Hugging Face model, or a
    Hugging Face folder), read without building the model: what its decoders spell with."""
    from ._hf_ctc import is_hf_folder, read_vocabulary

    if is_hf_folder(model_dir):
        return read_vocabulary(Path(model_dir))
    if not (Path(model_dir) / CONFIG).is_file():  # decoder assets alone: our characters
        return CHARACTERS
    cfg = read_config(model_dir)
    v = cfg.get("model", {}).get("vocabulary") if isinstance(cfg.get("model"), dict) else None
    return Vocabulary.from_dict(v) if isinstance(v, dict) else CHARACTERS


def check_card(folder: Path) -> None:
    """A model card, where there is one, holds only the keys `finalize` writes."""
    path = Path(folder) / CARD
    if path.is_file():
        read_json(path, CARD_KEYS, "model card")


def trusts_pickle() -> bool:
    """Set by `asrcompress --trust-pickle` (an environment variable, so worker processes see it)."""
    return os.environ.get(TRUST_PICKLE_ENV) == "1"


def _read_weights(model_dir: Path, trust_pickle: bool) -> tuple[dict, Path]:
    """The state dict, and the file it came from."""
    path = model_dir / WEIGHTS
    if path.is_file():
        try:
            return load_file(str(path)), path
        except (SafetensorError, OSError) as e:
            raise UserError(f"{path}: not a valid safetensors file ({e})") from None
    pickled = next((model_dir / n for n in PICKLE_NAMES if (model_dir / n).is_file()), None)
    if pickled is None:
        raise UserError(f"{path}: weights not found")
    if not (trust_pickle or trusts_pickle()):
        raise UserError(f"{pickled}: a pickle checkpoint, refused (loading pickle can run code); convert it "
                        f"to {WEIGHTS}, or pass --trust-pickle if you trust where it came from")
    import pickle

    import torch

    try:  # still the restricted unpickler: tensors and plain containers only
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{pickled}: not a loadable weights-only checkpoint ({str(e).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint {"model": state_dict, ...}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{pickled}: holds no state dict of tensors")
    return state, pickled


def load_model(model_dir: Path, trust_pickle: bool = False, unfinished_ok: bool = False) -> nn.Module:
    """A model folder. Weights come from model.safetensors; a pickle checkpoint (model.pt,
    model.pth, pytorch_model.bin) only with `trust_pickle` (or --trust-pickle), and then with
    torch.load(weights_only=True). An unfinished output is refused, except to the writer that is
    finishing it (`unfinished_ok`)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: model folder not found")
    from .._outputs import is_incomplete
    from ..export import SUMS, verify_if_bundled

    if is_incomplete(model_dir) and not unfinished_ok:
        raise UserError(f"{model_dir}: an unfinished output (the command writing it was stopped); run that "
                        "command again")
    if (model_dir / SUMS).is_file() and (model_dir / "model").is_dir():
        model_dir = model_dir / "model"  # a whole export bundle was given
    verify_if_bundled(model_dir)
    from ._hf_ctc import is_hf_folder, load_hf_folder

    if is_hf_folder(model_dir):
        return load_hf_folder(model_dir, trust_pickle)
    cfg = read_config(model_dir)
    check_card(model_dir)
    adapter = ARCHITECTURES.get(cfg.get("architecture"))  # type: ignore[arg-type]
    if adapter is None or not adapter.savable:
        known = sorted(n for n, a in ARCHITECTURES.items() if a.savable)
        raise UserError(f"{model_dir / CONFIG}: field 'architecture' must be one of {', '.join(known)}, "
                        f"not {cfg.get('architecture')!r}")
    try:
        model = adapter.build(cfg["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{model_dir / CONFIG}: bad field 'model' ({e})") from None
    if list(cfg.get("tokens", [])) != list(adapter.vocabulary(model).tokens):
        raise UserError(f"{model_dir / CONFIG}: field 'tokens' does not match the {adapter.name} model's vocabulary")
    if (model_dir / "compression.json").exists():
        from ..compression import apply_structure

        try:
            model = apply_structure(model, model_dir)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{model_dir / 'compression.json'}: does not fit the model in {CONFIG} ({e})") from None
    state, path = _read_weights(model_dir, trust_pickle)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise UserError(f"{path}: weights do not fit the model in {CONFIG}: {first}") from None
    return model.eval()
