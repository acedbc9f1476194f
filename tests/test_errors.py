"""The bad-input catalogue (docs/errors.md): every case is a CLI run that must end in one
line naming the bad item, exit code 2, no traceback, and no change to an existing study or
MLflow store beside it. `scripts/errors_catalogue.py` writes docs/errors.md from these cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import BASE_MODEL, REPO

MIN_CASES = 40


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    what: str
    build: Callable[[Path], list[str]]  # writes its files under the work dir, returns CLI args
    needles: tuple[str, ...]  # must all be in the one error line


# --- files the cases are made of ---------------------------------------------------------

def wav(path: Path, seconds: float = 0.5, sr: int = 16000, channels: int = 1, nan: bool = False) -> Path:
    x = np.random.default_rng(0).standard_normal((int(seconds * sr), channels)).astype(np.float32) * 0.1
    if nan:
        x[10] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x if channels > 1 else x[:, 0], sr, subtype="FLOAT" if nan else "PCM_16")
    return path


def manifest(w: Path, name: str, rows: list, raw: str | None = None) -> Path:
    path = w / name
    path.write_text(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def evaluate_strict(w: Path, m: Path) -> list[str]:
    return ["evaluate", "--model", str(BASE_MODEL), "--manifest", str(m), "--strict"]


def audio_case(name: str, make: Callable[[Path], Path], text: str = "hello world") -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        audio = make(w)
        return evaluate_strict(w, manifest(w, f"{name}.jsonl", [{"audio_filepath": audio.name, "text": text}]))
    return build


def corrupt(w: Path) -> Path:
    p = w / "corrupt.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return p


def empty(w: Path) -> Path:
    p = w / "empty.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), 16000)
    return p


def text_file(w: Path) -> Path:
    p = w / "speech.txt"
    p.write_text("this is not audio")
    return p


GOOD_SPACE = """version: 1
groups:
  - pattern: "encoder.*"
    bits: [null, 8]
methods: [quant]
distill: {steps: 0}
objectives: [wer, latency@host, memory]
"""


def space_case(text: str) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        (w / "space.yaml").write_text(text)
        return search(w, "space.yaml")
    return build


def search(w: Path, space: str, *extra: str, study: str = "new") -> list[str]:
    if not (w / space).exists():
        (w / space).write_text(GOOD_SPACE)
    return ["search", "--space", str(w / space), "--model", str(BASE_MODEL), "--corpus", str(w.parent / "corpus"),
            "--trials", "1", "--dev-utterances", "2", "--kd-utterances", "2", "--study", study,
            "--profiles", str(REPO / "hardware_profiles"), "--strategy", "one-stage", *extra]


def staged(w: Path, space: str, *extra: str) -> list[str]:
    """The staged search (the default strategy) with the one-stage helper's inputs."""
    args = search(w, space)
    i = args.index("--trials")
    return args[:i] + args[i + 2:-2] + list(extra)


def profile_case(change: Callable[[dict], None]) -> Callable[[Path], list[str]]:
    import yaml

    def build(w: Path) -> list[str]:
        doc = yaml.safe_load((REPO / "hardware_profiles" / "rpi5.yaml").read_text())
        change(doc)
        (w / "device.yaml").write_text(yaml.safe_dump(doc))
        return ["latency", "--model", str(w / "absent.onnx"), "--profile", str(w / "device.yaml")]
    return build


def policy_case(text: str) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        (w / "policy.yaml").write_text(text)
        return ["compress", "--model", str(BASE_MODEL), "--policy", str(w / "policy.yaml"), "--out", str(w / "out")]
    return build


def model_copy(w: Path, change: Callable[[Path], None]) -> Path:
    import shutil

    m = w / "model"
    shutil.copytree(BASE_MODEL, m, ignore=shutil.ignore_patterns("*.onnx", ".asrcompress-output"))  # a user's copy
    change(m)
    return m


def checkpoint_case(change: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    return lambda w: ["layers", "--model", str(model_copy(w, change))]


def hf_folder(w: Path, change: Callable[[Path], None], vocab: dict | None = None) -> Path:
    """A tiny Hugging Face CTC folder (save_pretrained, built offline), changed by `change`."""
    from .models.hf import tiny_hf_folder

    m = tiny_hf_folder(w / "hf_model", vocab=vocab)
    change(m)
    return m


def hf_case(change: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    return lambda w: ["layers", "--model", str(hf_folder(w, change))]


def hf_to_pickle(m: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(m / "model.safetensors")), m / "pytorch_model.bin")
    (m / "model.safetensors").unlink()


def hf_model_type(m: Path) -> None:
    cfg = json.loads((m / "config.json").read_text())
    (m / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))


def hf_bpe_beam(w: Path) -> list[str]:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "\u2581the": 5, "\u2581a": 6, "ing": 7}
    m = hf_folder(w, lambda m: None, vocab)
    return ["evaluate", "--model", str(m), "--manifest", str(w.parent / "x.jsonl"), "--decoder", "beam_lm"]


def truncate(m: Path) -> None:
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 3])


def to_pickle(m: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(m / "model.safetensors")), m / "model.pt")
    (m / "model.safetensors").unlink()


def other_shapes(m: Path) -> None:
    cfg = json.loads((m / "config.json").read_text())
    cfg["model"]["ffn_dim"] = cfg["model"]["ffn_dim"] // 2
    (m / "config.json").write_text(json.dumps(cfg))


def tampered_bundle(w: Path) -> list[str]:
    from asrcompress.export._bundle import write_sums

    (w / "bundle").mkdir()
    model_copy(w / "bundle", lambda m: None)
    write_sums(w / "bundle")
    with open(w / "bundle" / "model" / "config.json", "a") as f:
        f.write(" ")
    return ["layers", "--model", str(w / "bundle")]


def ours_with_note(w: Path) -> Path:
    """A folder the user keeps notes in: not written by asrcompress."""
    (w / "notes").mkdir()
    (w / "notes" / "todo.txt").write_text("keep me")
    return w / "notes"


def compress_to(out: Callable[[Path], Path], model: Callable[[Path], Path] = lambda w: BASE_MODEL
                ) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        (w / "int8.yaml").write_text("version: 1\nrules:\n  - global: true\n    quant: {bits: 8}\n")
        return ["compress", "--model", str(model(w)), "--policy", str(w / "int8.yaml"), "--out", str(out(w))]
    return build


def with_key(name: str, key: str = "surprise") -> Callable[[Path], None]:
    def change(m: Path) -> None:
        doc = json.loads((m / name).read_text()) if (m / name).exists() else {}
        (m / name).write_text(json.dumps(doc | {key: 1}))
    return change


def bundle_with_card_key(w: Path) -> list[str]:
    from asrcompress.export._bundle import write_sums

    (w / "bundle").mkdir()
    model_copy(w / "bundle", lambda m: None)
    (w / "bundle" / "model_card.json").write_text(json.dumps({"study": "s", "trail": 3}))
    write_sums(w / "bundle")
    return ["verify", "--bundle", str(w / "bundle")]


def resume(*extra: str) -> Callable[[Path], list[str]]:
    return lambda w: ["search", "--study", "settled", "--strategy", "one-stage", *extra]


def tiny_model(w: Path) -> Path:
    from asrcompress.models import save_model

    from .compression.models import conformer

    save_model(conformer(), w / "tiny")
    return w / "tiny"


def other_corpus(w: Path) -> Path:
    import shutil

    shutil.copytree(w.parent / "corpus", w / "corpus")
    (w / "corpus" / "dev.jsonl").write_text((w / "corpus" / "dev.jsonl").read_text().splitlines()[0] + "\n")
    return w / "corpus"


def lines(rows: list[str]) -> str:
    return "".join(r + "\n" for r in rows)


def latin1_manifest(w: Path) -> list[str]:
    (w / "m5.jsonl").write_bytes('{"audio_filepath": "a.wav", "text": "caf\xe9"}\n'.encode("latin-1"))
    return evaluate_strict(w, w / "m5.jsonl")


def text_as(path: Path) -> Path:
    path.write_text("not an onnx model")
    return path


def blocked(w: Path) -> Path:
    (w / "blocker").write_text("a file where a folder should be")
    return w / "blocker" / "mlruns"


def librispeech(w: Path, missing: bool = False, none: bool = False) -> Path:
    root = w / "libri"
    chapter = root / "19" / "198"
    for i in range(3):
        wav(chapter / f"19-198-000{i}.flac")
    if not none:
        n = 2 if missing else 3
        (chapter / "19-198.trans.txt").write_text(lines([f"19-198-000{i} HELLO WORLD" for i in range(n)]))
    return root


CASES = [
    # audio
    Case("audio-corrupt", "audio", "a .wav whose bytes are not audio", audio_case("a1", corrupt),
         ("corrupt.wav", "unreadable or corrupt audio")),
    Case("audio-empty", "audio", "a .wav with no samples", audio_case("a2", empty), ("empty.wav", "no samples")),
    Case("audio-sample-rate", "audio", "8 kHz audio for a 16 kHz model",
         audio_case("a3", lambda w: wav(w / "phone.wav", sr=8000)), ("phone.wav", "sample rate 8000 Hz")),
    Case("audio-stereo", "audio", "two-channel audio", audio_case("a4", lambda w: wav(w / "stereo.wav", channels=2)),
         ("stereo.wav", "2 audio channels")),
    Case("audio-format", "audio", "a text file given as audio", audio_case("a5", text_file),
         ("speech.txt", "unsupported audio format '.txt'")),
    Case("audio-missing", "audio", "a manifest entry whose audio file does not exist",
         audio_case("a6", lambda w: w / "gone.wav"), ("gone.wav", "missing audio file")),
    Case("audio-nan", "audio", "float audio with a NaN sample", audio_case("a7", lambda w: wav(w / "nan.wav", nan=True)),
         ("nan.wav", "NaN or infinite samples")),
    # transcripts
    Case("transcript-missing", "transcripts", "a manifest line without 'text'",
         lambda w: evaluate_strict(w, manifest(w, "t1.jsonl", [{"audio_filepath": wav(w / "t1.wav").name}])),
         ("t1.jsonl:1", "'audio_filepath' and 'text'")),
    Case("transcript-empty", "transcripts", "an empty transcript",
         lambda w: evaluate_strict(w, manifest(w, "t2.jsonl", [{"audio_filepath": wav(w / "t2.wav").name, "text": " "}])),
         ("t2.wav", "empty transcript")),
    Case("transcript-non-ascii", "transcripts", "a transcript with no Latin letters (日本語)",
         lambda w: evaluate_strict(w, manifest(w, "t3.jsonl", [{"audio_filepath": wav(w / "t3.wav").name,
                                                                 "text": "日本語のテキスト"}])),
         ("t3.wav", "no usable characters")),
    Case("transcript-not-text", "transcripts", "a transcript that is a number",
         lambda w: evaluate_strict(w, manifest(w, "t4.jsonl", [{"audio_filepath": wav(w / "t4.wav").name, "text": 42}])),
         ("t4.wav", "empty transcript")),
    # manifests
    Case("manifest-bad-json", "manifests", "a line that is not JSON",
         lambda w: evaluate_strict(w, manifest(w, "m1.jsonl", [], raw='{oops\n{"audio_filepath": "a.wav", "text": "hi"}\n')),
         ("m1.jsonl:1", "not valid JSON")),
    Case("manifest-not-object", "manifests", "a line that is a JSON list",
         lambda w: evaluate_strict(w, manifest(w, "m2.jsonl", [], raw='["a.wav", "hi"]\n')),
         ("m2.jsonl:1", "needs the fields")),
    Case("manifest-path-escape", "manifests", "audio_filepath ../../etc/passwd",
         lambda w: evaluate_strict(w, manifest(w, "m3.jsonl", [{"audio_filepath": "../../etc/passwd", "text": "hi"}])),
         ("m3.jsonl:1", "escapes the manifest's folder")),
    Case("manifest-path-type", "manifests", "audio_filepath that is not a string",
         lambda w: evaluate_strict(w, manifest(w, "m4.jsonl", [{"audio_filepath": 7, "text": "hi"}])),
         ("m4.jsonl:1", "'audio_filepath' must be a non-empty string")),
    Case("manifest-not-utf8", "manifests", "a manifest in Latin-1", latin1_manifest, ("m5.jsonl", "not UTF-8")),
    Case("manifest-missing", "manifests", "a manifest path that does not exist",
         lambda w: evaluate_strict(w, w / "nowhere.jsonl"), ("nowhere.jsonl", "no such manifest")),
    Case("manifest-nothing-usable", "manifests", "every entry skipped (default, non-strict mode)",
         lambda w: ["evaluate", "--model", str(BASE_MODEL), "--manifest",
                    str(manifest(w, "m6.jsonl", [{"audio_filepath": "x.wav", "text": "hi"}]))],
         ("m6.jsonl", "no usable utterances")),
    # LibriSpeech folders
    Case("librispeech-missing-transcript", "LibriSpeech", "a .flac with no line in its chapter's .trans.txt",
         lambda w: ["evaluate", "--model", str(BASE_MODEL), "--strict", "--manifest", str(librispeech(w, missing=True))],
         ("19-198-0002.flac", "no transcript line")),
    Case("librispeech-no-transcripts", "LibriSpeech", "a folder with audio but no .trans.txt at all",
         lambda w: ["evaluate", "--model", str(BASE_MODEL), "--manifest", str(librispeech(w, none=True))],
         ("libri", "no *.trans.txt")),
    # search spaces
    Case("space-unknown-key", "search spaces", "a misspelt top-level key (objectivs)",
         space_case(GOOD_SPACE.replace("objectives:", "objectivs:")), ("space.yaml", "unknown key 'objectivs'")),
    Case("space-no-layer", "search spaces", "a pattern that matches no layer of the model",
         space_case(GOOD_SPACE.replace("encoder.*", "decoder.*")), ("space.yaml", "groups[0]", "matches no layer")),
    Case("space-bad-range", "search spaces", "a sparsity choice of 1.5",
         space_case(GOOD_SPACE.replace("bits: [null, 8]", "sparsity: [0.0, 1.5]").replace("[quant]", "[prune]")),
         ("space.yaml", "'sparsity' choice 1.5")),
    Case("space-bad-type", "search spaces", "bits given as a word",
         space_case(GOOD_SPACE.replace("[null, 8]", "[eight]")), ("space.yaml", "'bits' choice 'eight'")),
    Case("space-unknown-objective-constraint", "search spaces", "a constraint on an objective the space lacks",
         space_case(GOOD_SPACE + 'constraints: ["latency@rpi4 <= 50"]\n'),
         ("space.yaml", "'latency@rpi4'", "not an objective")),
    Case("space-yaml-tag", "search spaces", "a YAML tag that would construct a Python object",
         space_case("version: !!python/object/apply:os.system ['echo pwned']\n"), ("space.yaml", "YAML")),
    Case("space-not-mapping", "search spaces", "a YAML list instead of a mapping",
         space_case("- version: 1\n"), ("space.yaml", "a search space is a YAML mapping")),
    Case("space-bad-lr", "search spaces", "a distillation learning rate of 5",
         space_case(GOOD_SPACE.replace("{steps: 0}", "{steps: 10, lr: 5}")), ("space.yaml", "'lr' must be in (0, 1)")),
    # hardware profiles
    Case("profile-missing-figure", "hardware profiles", "a profile without its int8 throughput",
         profile_case(lambda d: d.pop("int8_gops")), ("device.yaml", "int8_gops")),
    Case("profile-negative-figure", "hardware profiles", "a negative memory bandwidth",
         profile_case(lambda d: d.update(mem_bandwidth_gbs=-5)), ("device.yaml", "mem_bandwidth_gbs")),
    Case("profile-threads", "hardware profiles", "more threads than the device has cores",
         profile_case(lambda d: d.update(threads=64, cores=4)), ("device.yaml", "'threads' (64)")),
    Case("profile-kernel-flag", "hardware profiles", "a kernel flag that is not true or false",
         profile_case(lambda d: d["kernels"].update(int8_matmul="maybe")), ("device.yaml", "'kernels'")),
    Case("profile-int8-paths-row", "hardware profiles", "an int8_paths row that is not [K, N, T, u8_us, s8_us]",
         profile_case(lambda d: d.update(int8_paths={"s8_full_range_exact": True, "measured": [[64, 64]]})),
         ("device.yaml", "int8_paths.measured[0]")),
    # policies
    Case("policy-other-model", "policies", "a policy written for wav2vec2 (its layer names)",
         policy_case("version: 1\nrules:\n  - name: encoder.transformer.layers.0.attention.k_proj\n"
                     "    quant: {bits: 8}\n"), ("policy.yaml", "encoder.transformer.layers.0.attention.k_proj")),
    Case("policy-two-replacing-methods", "policies", "tucker and separable on one layer (each replaces it)",
         lambda w: policy_case("version: 1\nrules:\n  - name: subsampling.conv2\n    tucker: {rank_fraction: 0.5}\n"
                               "    separable: {multiplier: 1}\n")(w) + ["--corpus", str(w.parent / "corpus")],
         ("policy.yaml", "subsampling.conv2", "tucker and separable")),
    Case("policy-unknown-field", "policies", "a misspelt method field (bit)",
         policy_case("version: 1\nrules:\n  - global: true\n    quant: {bit: 8}\n"), ("policy.yaml", "bit")),
    Case("policy-bits", "policies", "9-bit quantization (not a supported width)",
         policy_case("version: 1\nrules:\n  - global: true\n    quant: {bits: 9}\n"), ("policy.yaml", "bits")),
    Case("policy-sparsity-range", "policies", "sparsity 1.2",
         policy_case("version: 1\nrules:\n  - global: true\n    prune: {sparsity: 1.2}\n"), ("policy.yaml", "sparsity")),
    Case("policy-config-version", "policies", "a method config written by another version of its method",
         policy_case("version: 1\nrules:\n  - global: true\n    quant: {bits: 8, _version: 2}\n"),
         ("policy.yaml", "quant", "_version")),
    Case("policy-rank-too-big", "policies", "rank 5000 on a 144 x 576 layer",
         policy_case("version: 1\nrules:\n  - name: encoder.conformer_layers.0.ffn1.sequential.1\n"
                     "    lowrank: {rank: 5000}\n"), ("policy.yaml", "rank")),
    Case("policy-contradiction", "policies", "rank and energy on one layer",
         policy_case("version: 1\nrules:\n  - global: true\n    lowrank: {rank: 8, energy: 0.9}\n"),
         ("policy.yaml", "exactly one of rank, rank_fraction, energy")),
    Case("policy-yaml-tag", "policies", "a YAML tag that would construct a Python object",
         policy_case("version: !!python/object/apply:os.system ['echo pwned']\nrules: []\n"), ("policy.yaml",)),
    # checkpoints and bundles
    Case("checkpoint-truncated", "checkpoints", "model.safetensors cut to a third",
         checkpoint_case(truncate), ("model.safetensors", "not a valid safetensors file")),
    Case("checkpoint-pickle", "checkpoints", "a pickle model.pt without --trust-pickle",
         checkpoint_case(to_pickle), ("model.pt", "refused", "--trust-pickle")),
    Case("checkpoint-shapes", "checkpoints", "weights that do not fit the config (ffn_dim halved)",
         checkpoint_case(other_shapes), ("model.safetensors", "do not fit the model")),
    Case("checkpoint-config-json", "checkpoints", "a config.json that is not JSON",
         checkpoint_case(lambda m: (m / "config.json").write_text("{broken")), ("config.json", "invalid JSON")),
    Case("checkpoint-architecture", "checkpoints", "a config for another architecture",
         checkpoint_case(lambda m: (m / "config.json").write_text(json.dumps({"architecture": "whisper"}))),
         ("config.json", "'architecture'")),
    Case("hf-no-vocab", "checkpoints", "a Hugging Face CTC folder without vocab.json",
         hf_case(lambda m: (m / "vocab.json").unlink()), ("vocab.json", "not found")),
    Case("hf-pickle", "checkpoints", "a Hugging Face folder with pytorch_model.bin, without --trust-pickle",
         hf_case(hf_to_pickle), ("pytorch_model.bin", "refused", "--trust-pickle")),
    Case("hf-model-type", "checkpoints", "a Hugging Face folder of a model_type that is no CTC model",
         hf_case(hf_model_type), ("config.json", "model_type 'bert'")),
    Case("hf-bpe-beam", "checkpoints", "beam + LM decoding of a Hugging Face model with a word-piece vocabulary",
         hf_bpe_beam, ("vocab.json", "not characters", "--decoder greedy")),
    Case("bundle-tampered", "checkpoints", "an export bundle with one changed byte", tampered_bundle,
         ("config.json", "sha256 does not match")),
    Case("onnx-corrupt", "checkpoints", "an .onnx file that is not a model",
         lambda w: ["evaluate", "--model", str(BASE_MODEL), "--onnx", str(text_as(w / "model.onnx")),
                    "--manifest", str(w / "x.jsonl")], ("model.onnx", "not a loadable ONNX model")),
    # storage and tracking
    Case("storage-unreachable", "storage", "a PostgreSQL URL where no server listens",
         lambda w: search(w, "s1.yaml", "--storage", "postgresql://u:p@127.0.0.1:9/optuna"),
         ("127.0.0.1:9/optuna", "cannot connect")),
    Case("storage-driver", "storage", "a MySQL URL without its driver installed",
         lambda w: search(w, "s7.yaml", "--storage", "mysql://u:p@127.0.0.1:9/optuna"),
         ("127.0.0.1:9/optuna", "driver is not installed")),
    Case("storage-scheme", "storage", "a storage URL of an unknown kind",
         lambda w: search(w, "s2.yaml", "--storage", "redis://127.0.0.1/0"), ("redis://127.0.0.1/0", "journal:PATH")),
    Case("storage-sqlite-workers", "storage", "SQLite storage for 2 workers",
         lambda w: search(w, "s3.yaml", "--storage", f"sqlite:///{w}/o.db", "--workers", "2"),
         ("SQLite cannot serve several workers",)),
    Case("study-name-clash", "storage", "a study name taken by a study with other objectives",
         lambda w: search(w, "s4.yaml", study="existing"), ("study 'existing' already exists", "objectives")),
    Case("tracking-unreachable", "storage", "an MLflow server URL where nothing listens",
         lambda w: search(w, "s5.yaml", "--tracking-uri", "http://127.0.0.1:9"),
         ("http://127.0.0.1:9", "cannot reach the MLflow server")),
    Case("tracking-unwritable", "storage", "an MLflow store under a file (a folder that cannot be made)",
         lambda w: search(w, "s6.yaml", "--tracking-uri", f"sqlite:///{blocked(w)}/mlflow.db"),
         ("blocker/mlruns", "not writable")),
    # outputs (one helper for every writer: never over an input, never half-written)
    Case("output-is-input", "outputs", "compress --out the model folder it reads (it was overwritten once)",
         compress_to(lambda w: BASE_MODEL), ("--out", "is the model")),
    Case("output-inside-input", "outputs", "export-onnx --out a file inside the model folder",
         lambda w: ["export-onnx", "--model", str(BASE_MODEL), "--out", str(BASE_MODEL / "model.onnx")],
         ("--out", "lies inside the model folder")),
    Case("output-contains-input", "outputs", "compress --out a folder that holds the model",
         compress_to(lambda w: w, model=lambda w: model_copy(w, lambda m: None)), ("--out", "contains the model")),
    Case("output-is-policy", "outputs", "compress --out the policy file",
         compress_to(lambda w: w / "int8.yaml"), ("--out", "is the policy")),
    Case("output-not-ours", "outputs", "compress --out a non-empty folder asrcompress did not write",
         compress_to(ours_with_note), ("notes", "not written by asrcompress", "--overwrite")),
    Case("output-finalize-in-place", "outputs", "finalize in place on a model folder asrcompress did not write",
         lambda w: ["finalize", "--model", str(model_copy(w, lambda m: None)), "--corpus", str(w.parent / "corpus")],
         ("--model", "not written by asrcompress")),
    Case("output-unfinished", "outputs", "a model folder whose writer was killed (it still holds its marker)",
         lambda w: ["layers", "--model", str(model_copy(w, lambda m: (m / ".asrcompress-incomplete").write_text("")))],
         ("model", "an unfinished output")),
    # strict configs
    Case("config-unknown-key", "checkpoints", "config.json with a key this version does not know",
         checkpoint_case(with_key("config.json")), ("config.json", "unknown key 'surprise'")),
    Case("card-unknown-key", "checkpoints", "model_card.json with a misspelt key",
         checkpoint_case(with_key("model_card.json", "wer_tset")), ("model_card.json", "unknown key 'wer_tset'")),
    Case("compression-unknown-key", "checkpoints", "compression.json with an unknown key",
         checkpoint_case(with_key("compression.json")), ("compression.json", "unknown key 'surprise'")),
    Case("bundle-card-unknown-key", "checkpoints", "an export bundle whose model_card.json has a misspelt key",
         bundle_with_card_key, ("model_card.json", "unknown key 'trail'")),
    # a study's settings
    Case("resume-other-model", "studies", "resuming a study with another --model",
         lambda w: resume("--model", str(tiny_model(w)))(w), ("study 'settled'", "--model", "differs")),
    Case("resume-other-corpus", "studies", "resuming a study with another --corpus",
         lambda w: resume("--corpus", str(other_corpus(w)))(w), ("study 'settled'", "--corpus", "differs")),
    Case("resume-other-scoring", "studies", "resuming a study with other --dev-utterances",
         resume("--dev-utterances", "50"), ("study 'settled'", "--dev-utterances 50 differs from the study's 2")),
    Case("study-no-settings", "studies", "resuming a study made by an older asrcompress (no stored settings)",
         lambda w: ["search", "--study", "existing", "--trials", "3", "--strategy", "one-stage"],
         ("study 'existing'", "holds no settings")),
    Case("worker-unknown-study", "studies", "a worker joining a study that does not exist",
         lambda w: ["worker", "--study", "nope", "--storage", f"journal:{w.parent / 'mlruns' / 'optuna' / 'existing.journal'}"],
         ("study 'nope' not found",)),
    Case("dashboard-unknown-study", "studies", "a dashboard on a study that does not exist",
         lambda w: ["dashboard", "--study", "nope", "--storage", f"journal:{w.parent / 'mlruns' / 'optuna' / 'existing.journal'}"],
         ("study 'nope' not found",)),
    Case("ui-unknown-study", "studies", "the MLflow UI's front link for a study that is not in the store",
         lambda w: ["ui", "--study", "nope", "--tracking-uri", f"sqlite:///{w.parent / 'mlruns' / 'mlflow.db'}"],
         ("--study 'nope'", "no such study")),
    Case("search-no-space", "studies", "search with neither --space nor --study",
         lambda w: ["search"], ("--space", "--study")),
    Case("staged-one-stage-flag", "studies", "the staged search (the default) given a one-stage flag",
         lambda w: search(w, "st1.yaml")[:-2], ("--trials applies to --strategy one-stage",)),
    Case("staged-resume-one-stage-study", "studies", "the staged search resuming a one-stage study",
         lambda w: ["search", "--study", "settled"], ("study 'settled'", "not made by the staged strategy")),
    Case("staged-unknown-study", "studies", "the staged search resuming a study that does not exist",
         lambda w: ["search", "--study", "nope"], ("study 'nope' not found", "--space")),
    Case("staged-bad-rungs", "options", "the staged search's --rungs not increasing",
         lambda w: staged(w, "st2.yaml", "--rungs", "3,1"), ("--rungs 3,1 must be increasing",)),
    Case("staged-one-stage-sampler", "options", "the staged search given a sampler only the one-stage search has",
         lambda w: staged(w, "st3.yaml", "--sampler", "tpe"), ("--sampler 'tpe' is not one of nsga2, random",)),
    Case("staged-bad-device", "options", "the search's --device not cpu, cuda or auto",
         lambda w: staged(w, "st4.yaml", "--device", "tpu"), ("--device 'tpu' is not one of auto, cpu, cuda",)),
    Case("compress-bad-device", "options", "compress --device not cpu, cuda or auto",
         lambda w: ["compress", "--model", str(BASE_MODEL), "--policy", "int8", "--out", str(w / "dev-out"),
                    "--device", "gpu0"], ("--device 'gpu0' is not one of auto, cpu, cuda",)),
    Case("compress-no-policy", "options", "compress with neither --policy nor --recipe",
         lambda w: ["compress", "--out", str(w / "np-out")], ("--policy", "--recipe")),
    Case("recipe-not-a-recipe", "policies", "compress --recipe on a YAML file that is not a recipe",
         lambda w: (w / "notrecipe.yaml").write_text("version: 1\nrules: []\n") and
         ["compress", "--recipe", str(w / "notrecipe.yaml"), "--out", str(w / "nr-out")],
         ("notrecipe.yaml", "not an asrcompress recipe")),
    Case("bench-budget-staged", "options", "bench --budget-minutes with the staged arms (the default)",
         lambda w: ["bench", "--budget-minutes", "5"], ("--budget-minutes applies to --strategy one-stage",)),
    # options
    Case("option-trial-timeout", "options", "--trial-timeout 0",
         lambda w: search(w, "o1.yaml", "--trial-timeout", "0"), ("--trial-timeout 0",)),
    Case("option-calibration-utterances", "options", "--calibration-utterances 0",
         lambda w: ["export-onnx", "--model", str(BASE_MODEL), "--out", str(w / "m.onnx"), "--calibration",
                    str(w / "x.jsonl"), "--calibration-utterances", "0"], ("--calibration-utterances 0",)),
    Case("option-trial-and-pick", "options", "export with both --trial and --pick",
         lambda w: ["export", "--study", "existing", "--out", str(w / "b"), "--trial", "0", "--pick", "knee"],
         ("--trial N or --pick",)),
    Case("option-sensitivity-utterances", "options", "sensitivity --utterances 0",
         lambda w: ["sensitivity", "--space", "quick", "--model", str(BASE_MODEL), "--utterances", "0", "--no-mlflow"],
         ("--utterances 0",)),
    Case("sensitivity-no-dev", "options", "sensitivity --corpus a folder without dev.jsonl",
         lambda w: ["sensitivity", "--space", "quick", "--model", str(BASE_MODEL), "--corpus", str(w), "--no-mlflow"],
         ("dev.jsonl", "not found")),
    Case("option-propose-trials", "options", "propose --trials 0",
         lambda w: ["propose", "--space", "quick", "--model", str(BASE_MODEL), "--out", str(w / "p"), "--trials", "0"],
         ("--trials 0",)),
    Case("propose-out-not-empty", "options", "propose --out a folder that holds files",
         lambda w: ["propose", "--space", "quick", "--model", str(BASE_MODEL), "--out", "mlruns"],
         ("mlruns", "not an empty folder")),
    Case("finalists-no-candidates", "options", "finalists --candidates a folder propose did not write",
         lambda w: ["finalists", "--candidates", str(w)], ("candidates.json", "not found")),
    Case("option-finalists-rungs", "options", "finalists --rungs not increasing",
         lambda w: ["finalists", "--candidates", str(w), "--rungs", "300,100"], ("--rungs 300,100", "increasing")),
    Case("option-finalists-schedule", "options", "finalists --schedule not per-rung or single",
         lambda w: ["finalists", "--candidates", str(w), "--schedule", "linear"],
         ("--schedule 'linear' is not one of per-rung, single",)),
    Case("export-profile-no-int8-paths", "options", "export-onnx --profile a profile without an int8_paths table",
         lambda w: ["export-onnx", "--model", str(BASE_MODEL), "--out", str(w / "m.onnx"), "--profile", "rpi4"],
         ("rpi4.yaml", "no int8_paths")),
    Case("option-decoder", "options", "an unknown decoder",
         lambda w: ["evaluate", "--model", str(BASE_MODEL), "--manifest", str(w / "x.jsonl"), "--decoder", "viterbi"],
         ("viterbi",)),
]


# --- the run -----------------------------------------------------------------------------

def make_work(root: Path) -> Path:
    """A working folder holding an existing study and MLflow store that no case may change,
    and a small valid corpus the search cases get past."""
    import optuna
    from mlflow.tracking import MlflowClient

    work = root
    (work / "mlruns" / "optuna").mkdir(parents=True, exist_ok=True)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(work / "mlruns" / "optuna" / "existing.journal")))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name="existing", directions=["minimize", "minimize"])
    study.set_user_attr("objectives", ["wer", "memory"])
    for i in range(2):
        study.enqueue_trial({})
        study.tell(study.ask(), [0.1 * (i + 1), 5.0 - i])
    client = MlflowClient(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    exp = client.create_experiment("asrcompress/existing", artifact_location=(work / "mlruns" / "artifacts").as_uri())
    run = client.create_run(exp, tags={"asrcompress_role": "trial", "trial": "0", "pareto": "true"})
    client.log_metric(run.info.run_id, "wer", 0.1)
    client.set_terminated(run.info.run_id)
    corpus = work / "corpus"
    for split in ("train", "dev", "test"):
        rows = [{"audio_filepath": wav(corpus / f"{split}{i}.wav", seconds=1.0).name, "text": "hello world"}
                for i in range(3)]
        manifest(corpus, f"{split}.jsonl", rows)
    _settled_study(work, corpus)
    (work / "x.jsonl").write_text(json.dumps({"audio_filepath": "corpus/dev0.wav", "text": "hello"}) + "\n")
    return work


def _settled_study(work: Path, corpus: Path) -> None:
    """A study made by this version (settings stored) on the shipped model and the corpus above."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from asrcompress.search._settings import SETTINGS_ATTR, build_settings

    (work / "settled.yaml").write_text(GOOD_SPACE)
    storage = JournalStorage(JournalFileBackend(str(work / "mlruns" / "optuna" / "settled.journal")))
    study = optuna.create_study(storage=storage, study_name="settled", directions=["minimize"] * 3)
    settings = build_settings(work / "settled.yaml", BASE_MODEL, corpus, REPO / "hardware_profiles",
                              work / "mlruns" / "studies" / "settled", budget=2, dev_utterances=2)
    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    study.set_user_attr("objectives", list(settings.space().objectives))


def snapshot(work: Path) -> dict[str, str]:
    # mlflow.db.init.lock: the empty flock file asrcompress opens the store under (tracking._client)
    return {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((work / "mlruns").rglob("*"))
            if p.is_file() and "studies" not in p.parts and not p.name.endswith(".init.lock")}


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """The CLI in this process (as `asrcompress ...` would run it); returns (exit code, stdout, stderr)."""
    from asrcompress import cli

    old_cwd, argv, env = os.getcwd(), sys.argv, dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.chdir(cwd)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        sys.argv = ["asrcompress", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old_cwd)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(env)
    return code, out.getvalue(), err.getvalue()


def run_case(case: Case, work: Path) -> tuple[int, str, str]:
    case_dir = work / case.id
    case_dir.mkdir(exist_ok=True)
    return run_cli(case.build(case_dir), work)


def one_error_line(code: int, out: str, err: str) -> str:
    """The single `error:` line of a refused command (exit 2, no traceback)."""
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in out + err
    lines_ = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines_) == 1 and lines_[0].startswith("error: "), err
    return lines_[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return make_work(tmp_path_factory.mktemp("errors"))


def test_the_catalogue_is_complete_and_documented():
    assert len(CASES) >= MIN_CASES
    assert len({c.id for c in CASES}) == len(CASES)
    doc = (REPO / "docs" / "errors.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"docs/errors.md lacks {missing}; run scripts/errors_catalogue.py"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_one_line_naming_it(case: Case, work: Path):
    before = snapshot(work)
    line = one_error_line(*run_case(case, work))
    for needle in case.needles:
        assert needle in line, (needle, line)
    assert snapshot(work) == before  # the existing study and MLflow store are untouched
