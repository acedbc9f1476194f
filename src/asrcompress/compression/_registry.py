"""Handlers registered per config class (torchao style: `register(ConfigClass)`).

A handler computes only its result for one weight matrix: a mask, new values on a grid,
or low-rank factors. Shared code in `_apply` does the bookkeeping (module surgery, baking,
recording state).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._configs import MethodConfig
from ._layers import LayerInfo


@dataclass
class Mask:
    keep: torch.Tensor  # bool, same shape as the weight


@dataclass
class Values:
    weight: torch.Tensor  # replacement values, same shape
    meta: dict = field(default_factory=dict)  # bits, kind, clusters, ... for size accounting


@dataclass
class Factors:
    first: torch.Tensor  # (r, in)
    second: torch.Tensor  # (out, r)


class Handler:
    """Base: `not_applicable` says why a layer cannot take the method (None if it can)."""

    def not_applicable(self, layer: LayerInfo, modules: dict[str, torch.nn.Module]) -> str | None:
        return None

    def check(self, layer: LayerInfo, cfg: MethodConfig) -> None:
        """Raise ConfigError for values that depend on the layer (e.g. rank > min(in, out))."""

    def compute(self, weight: torch.Tensor, cfg: MethodConfig) -> Mask | Values | Factors:
        raise NotImplementedError


HANDLERS: dict[type[MethodConfig], Handler] = {}


def register(config_cls: type[MethodConfig]):
    def deco(handler_cls: type[Handler]) -> type[Handler]:
        HANDLERS[config_cls] = handler_cls()
        return handler_cls

    return deco


def handler_for(cfg: MethodConfig) -> Handler:
    return HANDLERS[type(cfg)]
