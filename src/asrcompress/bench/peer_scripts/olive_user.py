"""Olive's custom metric: greedy-CTC WER of a candidate ONNX model on dev utterances."""

from __future__ import annotations

from pathlib import Path

import jiwer
import onnxruntime as ort
import torch

from asrcompress.data import LogMel, load_manifest, read_audio
from asrcompress.models import greedy_decode

_CACHE: dict = {}


def _dev(corpus: str, n: int):
    if (corpus, n) not in _CACHE:
        utts = load_manifest(Path(corpus) / "dev.jsonl")[0][:n]
        mel = LogMel(n_mels=80).eval()
        feats = []
        with torch.no_grad():
            for u in utts:
                w = read_audio(u.audio_filepath)
                feats.append(mel(torch.from_numpy(w)[None].float(), torch.tensor([w.size]))[0].numpy())
        _CACHE[(corpus, n)] = (feats, [u.text for u in utts])
    return _CACHE[(corpus, n)]


def eval_wer(model, device, execution_providers, corpus: str = "", n: int = 40) -> float:
    feats, refs = _dev(corpus, n)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model.model_path), opts, providers=["CPUExecutionProvider"])
    hyps = []
    for f in feats:
        lp = sess.run(None, {"feats": f})[0]
        hyps.append(greedy_decode(torch.from_numpy(lp), torch.tensor([lp.shape[1]]))[0])
    return float(jiwer.wer(refs, hyps))


def wer_of(path: str, corpus: str, n: int) -> float:
    class M:
        model_path = path
    return eval_wer(M, None, None, corpus, n)



