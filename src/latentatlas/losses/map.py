"""The map term of a free-layout run: the decoder learns the images from their laid-out coordinates and the encoder
is distilled onto them.

A free-layout run's model carries its map (``model.map``, ``atlas_map.PlacedMap``: the training images' positions,
fixed before training). For each training batch the term adds

    reconstruction(decoder(coords[index]), x)  +  mean squared distance of the encoder's point to coords[index]

so that every point of the map decodes and the encoder's one pass lands near the layout (the placement of new images
then refines from the map itself). The objective's reconstruction term stays: it is the reconstruction through the
encoder, which the distillation keeps close to the map's own.
"""

from __future__ import annotations

from torch import Tensor

from .base import Batch, Term
from .reconstruction import KINDS


class MapTerm(Term):
    name = "map"
    on_unseen = False  # the coordinates exist for the training images only

    def __init__(self, kind: str = "bce", weight: float = 1.0):
        super().__init__(weight)
        self.kind = kind
        self.fn = KINDS[kind]

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None) -> MapTerm | None:
        return cls(cfg.loss) if cfg.layout == "free" else None

    def forward(self, batch: Batch, out) -> Tensor:
        coords = batch.model.map.coords[batch.index]  # (B, dim)
        decoded = self.fn(batch.model.decoder(coords).float(), batch.x)
        distilled = (out.z.float() - coords).square().sum(-1).mean()
        return decoded + distilled

    def extra_repr(self) -> str:
        return f"{self.kind}, weight={self.weight}"
