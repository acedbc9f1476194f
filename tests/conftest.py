import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE_MODEL = REPO / "models" / "conformer_ctc_base"


def _have_synth() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("flite") is not None


needs_synth = pytest.mark.skipif(not _have_synth(), reason="espeak-ng/flite not installed (make setup installs them)")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A few synthesised utterances per split, shared by the whole session."""
    if not _have_synth():
        pytest.skip("espeak-ng/flite not installed")
    from asrcompress.data import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, seed=7, size="small", workers=2, counts={"train": 24, "dev": 8, "test": 8})
    return out
