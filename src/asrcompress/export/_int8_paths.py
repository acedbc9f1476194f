"""Which int8 kernel a dynamically quantized MatMul runs: u8 x u8 or u8 x s8, by measurement.

`DynamicQuantizeMatMul` takes uint8 weights with zero point 128 (u8 x u8) or signed int8
weights (u8 x s8). Which is faster depends on the CPU and on the shape (K, N) and the number of
rows T, so `asrcompress calibrate` times both for every shape of its grid and stores the table
in the profile (`int8_paths`). A layer takes the path with the smaller summed time over the
table's T values at the nearest (K, N) (in log distance): one graph serves every input length.

Exactness. Codes within [-64, 63] (<= 7 bits) cannot saturate the u8 x s8 kernel's int16 pair
sums on CPUs without VNNI (onnxruntime PR #12088), so 5..7-bit layers may take either path.
Full-range 8-bit codes may saturate there, so an 8-bit layer takes s8 only when the profile's
calibration ran a saturating input through the kernel and got the exact product
(`s8_full_range_exact`). That flag belongs to the machine measured: the default table (the
shipped host profile's) is used for 5..7-bit layers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import UserError


@dataclass(frozen=True)
class Int8Paths:
    """Measured per-copy microseconds of both paths: rows of (K, N, T, u8_us, s8_us)."""

    measured: tuple[tuple[int, int, int, float, float], ...] = field(default=())
    s8_full_range_exact: bool = False
    force: str | None = None  # "u8" or "s8": one path for every layer (s8 still only where exact)

    def __post_init__(self) -> None:
        if self.force not in (None, "u8", "s8"):
            raise ValueError(f"force={self.force!r} is not one of u8, s8")

    def signed(self, k: int, n: int, bits: int) -> bool:
        """True when a (N, K) layer of `bits` should store s8 weights."""
        if bits > 8:
            raise ValueError(f"an int8 kernel holds at most 8 bits, not {bits}")
        if bits == 8 and not self.s8_full_range_exact:
            return False
        if self.force is not None:
            return self.force == "s8"
        if not self.measured:
            return bits <= 7  # no table: the rule measured on the first hosts (s8 faster, exact)
        near = min(math.dist((math.log(k), math.log(n)), (math.log(r[0]), math.log(r[1]))) for r in self.measured)
        rows = [r for r in self.measured
                if math.dist((math.log(k), math.log(n)), (math.log(r[0]), math.log(r[1]))) <= near + 1e-9]
        return sum(r[4] for r in rows) <= sum(r[3] for r in rows)

    def to_dict(self) -> dict:
        return {"s8_full_range_exact": self.s8_full_range_exact,
                "measured": [[int(k), int(n), int(t), float(u), float(s)] for k, n, t, u, s in self.measured]}

    @property
    def for_any_machine(self) -> Int8Paths:
        """The same table without the full-range flag (for a machine it was not measured on)."""
        return Int8Paths(self.measured, False, self.force)


def parse_int8_paths(doc: object, where: str) -> Int8Paths:
    """The `int8_paths` field of a profile; a UserError naming `where` when malformed."""
    if not isinstance(doc, dict) or set(doc) != {"s8_full_range_exact", "measured"}:
        raise UserError(f"{where}: field 'int8_paths' must give s8_full_range_exact and measured")
    if not isinstance(doc["s8_full_range_exact"], bool):
        raise UserError(f"{where}: int8_paths.s8_full_range_exact must be true or false")
    rows = doc["measured"]
    if not isinstance(rows, list):
        raise UserError(f"{where}: int8_paths.measured must be a list of [K, N, T, u8_us, s8_us]")
    out = []
    for i, r in enumerate(rows):
        ok = isinstance(r, list) and len(r) == 5 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in r) and all(
            float(v).is_integer() for v in r[:3])
        if not ok:
            raise UserError(f"{where}: int8_paths.measured[{i}] must be [K, N, T, u8_us, s8_us], "
                            f"positive numbers with whole K, N, T; got {r!r}")
        out.append((int(r[0]), int(r[1]), int(r[2]), float(r[3]), float(r[4])))
    return Int8Paths(tuple(out), doc["s8_full_range_exact"])


def default_int8_paths() -> Int8Paths:
    """The shipped host profile's table, without its full-range flag (see the module note)."""
    from .._shipped import profiles_dir
    from .._yaml import read_yaml

    path = profiles_dir() / "host.yaml"
    doc = read_yaml(path, "hardware profile") if path.is_file() else {}
    table = doc.get("int8_paths") if isinstance(doc, dict) else None
    return parse_int8_paths(table, str(path)).for_any_machine if table is not None else Int8Paths()
