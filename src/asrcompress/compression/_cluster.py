"""Weight sharing by k-means (scikit-learn) over a layer's non-zero weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from sklearn.cluster import KMeans

from ._configs import ConfigError, MethodConfig, is_int
from ._registry import Choice, Handler, Projection, Values, register


@dataclass(frozen=True)
class ClusterConfig(MethodConfig):
    """Weight sharing: k-means over the layer's (non-zero) weights to `clusters` values."""

    key: ClassVar[str] = "cluster"
    clusters: int

    def __post_init__(self) -> None:
        if not is_int(self.clusters) or not 2 <= self.clusters <= 4096:
            raise ConfigError(f"cluster.clusters={self.clusters} must be an integer in [2, 4096]")


@register(ClusterConfig, order=50, choices={"clusters": Choice("clusters", None)})
class Cluster(Handler):
    def check_plan(self, plan: dict) -> str | None:
        cluster, quant = plan.get("cluster"), plan.get("quant")
        bits = getattr(quant, "bits", None)
        if cluster is not None and bits is not None and cluster.clusters > 2**bits:
            return f"cluster.clusters={cluster.clusters} exceeds the {2 ** bits} levels of quant.bits={bits}"
        return None

    def compute(self, weight: torch.Tensor, cfg: ClusterConfig) -> Values:
        w = weight.detach().flatten().double().numpy()
        nz = w != 0  # pruned weights stay zero and outside the codebook
        values = w[nz]
        k = min(cfg.clusters, np.unique(values).size)
        out = np.zeros_like(w)
        if k:
            km = KMeans(n_clusters=k, n_init=1, random_state=0).fit(values.reshape(-1, 1))
            out[nz] = km.cluster_centers_[km.labels_, 0]
        q = torch.from_numpy(out).to(weight.dtype).view_as(weight)
        return Values(q, {"clusters": int(k)})

    def storage(self, state) -> dict | None:
        return {"codebook": state.clusters} if state.clusters else None

    def lowering(self, state) -> dict | None:
        # No sparse or codebook kernel runs on these CPUs: the layer is exported dense.
        return {"note": "sparsity and sharing are not run faster"} if state.clusters else None

    def keep(self, weight: torch.Tensor, state) -> Projection | None:
        if not state.clusters:
            return None
        w0 = weight.detach()
        codebook = torch.unique(w0[w0 != 0])

        def snap(w: torch.Tensor) -> torch.Tensor:
            nearest = (w.reshape(-1, 1) - codebook[None, :]).abs().argmin(dim=1)
            return torch.where(w == 0, w, codebook[nearest].view_as(w))

        return snap
