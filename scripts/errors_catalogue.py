"""Write docs/errors.md: run every bad-input case of tests/test_errors.py and record its message.

    .venv/bin/python scripts/errors_catalogue.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_errors import CASES, make_work, run_case, snapshot  # noqa: E402

HEAD = """# Bad-input catalogue

Every case below is a test (`tests/test_errors.py`, one parametrized case per row) that runs the
CLI on the bad input and checks that it ends with **one line** starting `error:` that names the
bad item, **exit code 2**, **no traceback**, and **no change** to an existing Optuna study and
MLflow store in the same `mlruns/` (their files are hashed before and after). Messages below
were recorded by `.venv/bin/python scripts/errors_catalogue.py` (temporary paths shortened to
`<tmp>`); the test only requires the quoted key phrases, so wording may be refined.

Data rules behind the audio and manifest rows: audio must be mono, at least 16 kHz (higher
rates are resampled) and `.wav`, `.flac` or `.ogg`; by default a bad entry is skipped and
counted in a warning, and `--strict` turns the first one into the error shown. A malformed
manifest line, or a relative `audio_filepath` that leaves the manifest's folder, is always an
error. Absolute paths are allowed: they are the user's explicit choice.

Output rules behind the outputs rows (one helper, `asrcompress/_outputs.py`, used by every
writer): an output that is an input, lies inside an input folder or contains an input is refused
(after resolving symlinks and `..`); outputs are built in a hidden sibling and renamed into place
only when complete, so a kill leaves the old output or none; a non-empty folder that asrcompress
did not write (no `.asrcompress-output` marker) is replaced only with `--overwrite`. A study keeps
its settings (model and corpus by sha256, space and profiles by content, scoring options): a
resume that names a different one is refused.

"""


def main() -> None:
    rows, bad = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = make_work(Path(tmp))
        before = snapshot(work)
        for case in CASES:
            code, _, err = run_case(case, work)
            line = next((l for l in err.splitlines() if l.startswith("error: ")), "(no error line)")
            line = line.replace(tmp, "<tmp>").replace(str(REPO), ".")
            ok = code == 2 and "Traceback" not in err and all(n in line for n in case.needles)
            if not ok:
                bad.append(case.id)
            rows.append(f"| `{case.id}` | {case.category} | {case.what} | `{line.replace('|', '/')}` |")
        untouched = snapshot(work) == before
    counts = Counter(c.category for c in CASES)
    text = HEAD + (f"{len(CASES)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".\n\n"
                   "| case | category | input | message |\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")
    (REPO / "docs" / "errors.md").write_text(text)
    print(f"{len(CASES)} cases, {len(CASES) - len(bad)} as required; existing study and runs untouched: {untouched}")
    if bad or not untouched:
        print("not as required:", ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
