"""Every built-in compression method passes the method contract (tests/compression/contract.py)."""

from asrcompress.compression import METHODS

from .contract import MethodContract


class TestDepthByKl(MethodContract):
    key, config = "depth", {"blocks_kept": 1}


class TestDepthByIndex(MethodContract):
    key, config = "depth", {"drop": [0]}


class TestTucker(MethodContract):
    key, config = "tucker", {"rank_fraction": 0.5}


class TestStructured(MethodContract):
    key, config = "structured", {"ratio": 0.25}


class TestLowRank(MethodContract):
    key, config = "lowrank", {"rank_fraction": 0.5}


class TestSparsityReg(MethodContract):
    key, config = "sparsity_reg", {"penalty": "l1", "strength": 0.01, "steps": 2}


class TestPrune(MethodContract):
    key, config = "prune", {"sparsity": 0.5}


class TestCluster(MethodContract):
    key, config = "cluster", {"clusters": 8}


class TestQuant8(MethodContract):
    key, config = "quant", {"bits": 8}


class TestQuant4(MethodContract):
    key, config = "quant", {"bits": 4}

    def size_exempt(self) -> str | None:
        # The export writes each row's one fp16 scale into every 32-value block of MatMulNBits
        # (fp32 block scales), and stores 4-bit Conv weights as int8 codes: ~16% above the
        # formula. Issue 17 (block-wise scales in PyTorch, the size count and the export) closes it.
        return "4-bit export stores per-block fp32 scales and int8 conv codes (issue 17)"


class TestQuant4Block32(MethodContract):
    key, config = "quant", {"bits": 4, "group": 32}


class TestQuant4Block32Gptq(MethodContract):
    key, config = "quant", {"bits": 4, "group": 32, "rounding": "gptq"}


class TestQuant7Signed(MethodContract):
    key, config = "quant", {"bits": 7}

    def size_exempt(self) -> str | None:
        return "7-bit codes are stored in int8: no kernel takes 7-bit weights (the formula packs them)"


class TestQuantLog(MethodContract):
    key, config = "quant", {"bits": 4, "kind": "log"}


def test_every_registered_method_has_a_contract_class():
    tested = {cls.key for cls in MethodContract.__subclasses__() if cls.__module__ == __name__}
    assert tested == set(METHODS)


class TestSeparableFromWeights(MethodContract):
    key, config = "separable", {"multiplier": 1, "fit": "weights"}


class TestSeparableFromActivations(MethodContract):
    key, config = "separable", {"multiplier": 2}
