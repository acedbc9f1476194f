"""Word error rate of one model with each decoder, on several manifests, with the share of
reference words outside the model's lexicon and each decoder's WER on those words alone.

    .venv/bin/python scripts/decoder_table.py --model models/conformer_ctc_base \
        --manifest data/default/test.jsonl --manifest data/v2/test.jsonl --out docs/decoders.json

The lexicon decoder (beam_lm) uses the model folder's tuned setting (`lexicon_decoder` in its
card, else the folder's decoder if that is beam_lm, else DecoderConfig's defaults); beam_char uses
the folder's decoder when it is beam_char. A paired bootstrap 95% interval (1,000 resamples of
utterances) is given for beam_char's WER minus beam_lm's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from asrcompress.data import load_manifest
from asrcompress.models import CARD, LEXICON_FILE, load_model, read_config
from asrcompress.objectives import DecoderConfig, decode_all, emissions, load_waves, out_of_lexicon, utterance_errors, wer


def decoders(model_dir: Path) -> dict[str, DecoderConfig]:
    own = read_config(model_dir).get("decoder") or {}
    card = json.loads((model_dir / CARD).read_text()) if (model_dir / CARD).is_file() else {}
    lexicon = card.get("lexicon_decoder") or (own if own.get("kind") == "beam_lm" else {"kind": "beam_lm"})
    char = own if own.get("kind") == "beam_char" else {"kind": "beam_char", "beam_size": 16, "beam_threshold": 15.0}
    return {"greedy": DecoderConfig(kind="greedy"), "beam_lm": DecoderConfig.from_dict(lexicon),
            "beam_char": DecoderConfig.from_dict(char)}


def paired_diff_ci(refs: list[str], a: list[str], b: list[str], n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of WER(a) - WER(b) over utterance resamples (the same resample for both)."""
    per = list(zip(utterance_errors(refs, a), utterance_errors(refs, b), (len(r.split()) for r in refs)))
    rng = random.Random(seed)
    diffs = []
    for _ in range(n):
        s = [per[rng.randrange(len(per))] for _ in per]
        words = sum(t for *_, t in s) or 1
        diffs.append((sum(e for e, _, _ in s) - sum(e for _, e, _ in s)) / words)
    diffs.sort()
    return diffs[int(0.025 * n)], diffs[int(0.975 * n) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    model = load_model(a.model)
    lexicon = {line.split("\t", 1)[0] for line in (a.model / LEXICON_FILE).read_text().splitlines() if line}
    decs = decoders(a.model)
    rows = []
    for manifest in a.manifest:
        utts, _ = load_manifest(manifest)
        waves, refs = load_waves(utts)
        lps = emissions(model, waves)
        hyps = {name: decode_all(lps, a.model, cfg) for name, cfg in decs.items()}
        row = {"manifest": str(manifest), "utterances": len(utts)}
        for name, h in hyps.items():
            o = out_of_lexicon(refs, h, lexicon)
            row[name] = {"wer": round(wer(refs, h), 4), "ool_wer": round(o["ool_wer"], 4)}
            row["ool_share"], row["ool_words"] = round(o["ool_share"], 4), o["ool_words"]
        lo, hi = paired_diff_ci(refs, hyps["beam_char"], hyps["beam_lm"])
        row["beam_char_minus_beam_lm_ci95"] = [round(lo, 4), round(hi, 4)]
        rows.append(row)
        print(f"{manifest}: {len(utts)} utterances, {row['ool_share']:.1%} of words outside the lexicon", file=sys.stderr)
        for name in decs:
            print(f"  {name:9s} WER {row[name]['wer']:.2%}   on out-of-lexicon words {row[name]['ool_wer']:.2%}")
        print(f"  beam_char - beam_lm: 95% CI [{lo:+.2%}, {hi:+.2%}]")
    doc = {"model": str(a.model), "decoders": {k: v.to_dict() for k, v in decs.items()}, "rows": rows,
           "command": " ".join(["scripts/decoder_table.py", *sys.argv[1:]])}
    if a.out:
        a.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
