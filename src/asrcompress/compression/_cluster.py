"""Weight sharing by k-means (scikit-learn) over a layer's non-zero weights."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from ._configs import ClusterConfig
from ._registry import Handler, Values, register


@register(ClusterConfig)
class Cluster(Handler):
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
