"""A transformer's tensors in its original single-file layout and in diffusers', both ways.

FLUX.1 (BFL's names, flux1_layout) and SD 3.5 (SAI's names, sd35_layout) ship attention
projections fused (``qkv``, FLUX's ``linear1``) that diffusers keeps as separate layers, and a final
AdaLN whose halves are swapped. Each family lists its tensors as ``Fused`` entries; the two
functions here apply such a table in either direction at any width, splitting a fused tensor by
the diffusers model's own parameter shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fused:
    """One original tensor and the diffusers tensors it holds, concatenated along dim 0 in order.

    ``swap``: the original's final AdaLN gives (shift, scale), diffusers' (scale, shift).
    """

    original: str
    diffusers: tuple[str, ...]
    swap: bool = False


def linear_pair(original: str, *diffusers: str, swap: bool = False) -> Iterator[Fused]:
    """A linear layer's weight and bias."""
    for param in ("weight", "bias"):
        yield Fused(f"{original}.{param}", tuple(f"{d}.{param}" for d in diffusers), swap)


def swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def to_original(
    table: Iterable[Fused], state: Mapping[str, torch.Tensor], prefix: str = ""
) -> dict[str, torch.Tensor]:
    """A diffusers state dict in the original layout, each original name under ``prefix``."""
    out = {}
    for entry in table:
        tensor = torch.cat([state[name] for name in entry.diffusers], dim=0)
        out[prefix + entry.original] = swap_halves(tensor) if entry.swap else tensor
    return out


def from_original(
    table: Iterable[Fused], original: Mapping[str, torch.Tensor], target_shapes: Mapping[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """Original tensors (unprefixed names) as a diffusers state dict; ``KeyError`` names a tensor
    the file lacks."""
    out: dict[str, torch.Tensor] = {}
    for entry in table:
        tensor = original[entry.original]
        if entry.swap:
            tensor = swap_halves(tensor)
        sizes = [target_shapes[name][0] for name in entry.diffusers]
        for name, part in zip(entry.diffusers, torch.split(tensor, sizes, dim=0), strict=True):
            out[name] = part
    return out
