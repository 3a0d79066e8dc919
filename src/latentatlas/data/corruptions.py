"""Corruptions of images, each with one level: Gaussian noise (sigma), salt-and-pepper (p), a missing square patch
(its side) and a rotation (degrees).

One registry, ``CORRUPTIONS``, serves three users: the data spec's transforms (``noise:sigma=0.3`` derives a data
set, seeded, recorded in the run folder), ``latentatlas probe`` (a trained model swept over levels) and denoising
training (``train_noise``, ``train_occlude``: corrupted inputs, clean targets). A corruption works on a float
tensor of pixels in [0, 1], shaped (N, H, W), on any device; its randomness comes from the generator it is given
(None: torch's global one, which the trainer seeds per epoch, so a resumed run draws the same noise).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from .._limits import MAX_ROTATION
from ..errors import LatentAtlasError

if TYPE_CHECKING:  # torch is imported where pixels are changed, so that the command line starts fast
    import torch
    from torch import Tensor


class Corruption:
    """One kind of corruption; subclasses set ``name``, ``level`` (the level's key, as in ``noise:sigma=0.3``),
    ``kind`` (its type) and ``label``, and implement :meth:`apply` (and :meth:`check_level`, :meth:`check` where a
    level has a range or must fit the image)."""

    name: ClassVar[str]
    level: ClassVar[str]
    kind: ClassVar[type] = float
    label: ClassVar[str]  # the level's axis label in figures
    probe_levels: ClassVar[str] = ""  # what `latentatlas probe` sweeps unless told (START:STOP:COUNT; "": none)

    def default_levels(self, image_shape: tuple[int, ...] | None) -> str:
        """What ``latentatlas probe`` sweeps unless told, on images of ``image_shape`` (None: not images)."""
        return self.probe_levels

    def check(self, level, image_shape: tuple[int, ...] | None = None) -> None:
        """Refuse, in one line, a level this corruption cannot take (:meth:`check_level`) or one that does not fit
        images of ``image_shape`` ((H, W); None: the samples are not images)."""
        self.check_level(level)

    def check_level(self, level) -> None:
        """Refuse a level out of range, whatever the images."""
        if not isinstance(level, (int, float)) or isinstance(level, bool) or not math.isfinite(level):
            raise LatentAtlasError(f"{self.name}: {self.level}={level!r} must be a finite number")

    def apply(self, x: Tensor, level, generator: torch.Generator | None = None) -> Tensor:
        """(N, H, W) floats in [0, 1] -> corrupted (N, H, W) floats in [0, 1]; ``x`` itself is left as it is."""
        raise NotImplementedError


class GaussianNoise(Corruption):
    """Additive Gaussian noise of standard deviation ``sigma`` (pixels in 0..1), clipped back to [0, 1]."""

    name, level, label, probe_levels = "noise", "sigma", "noise sigma (pixels in 0..1)", "0:0.6:7"

    def check_level(self, level):
        super().check_level(level)
        if level < 0:
            raise LatentAtlasError(f"{self.name}: sigma={level!r} is out of range: it must be >= 0")

    def apply(self, x, level, generator=None):
        import torch

        noise = torch.randn(x.shape, generator=generator, device=generator_device(generator, x))
        return (x + level * noise.to(x.device, x.dtype)).clamp_(0, 1)


class SaltAndPepper(Corruption):
    """Each pixel, with probability ``p``, set to 0 or to 1 (half each)."""

    name, level, label = "saltpepper", "p", "share of pixels set to 0 or 1"

    def check_level(self, level):
        super().check_level(level)
        if not 0 <= level <= 1:
            raise LatentAtlasError(f"{self.name}: p={level!r} is out of range: it must lie in [0, 1]")

    def apply(self, x, level, generator=None):
        import torch

        u = torch.rand(x.shape, generator=generator, device=generator_device(generator, x)).to(x.device)
        return torch.where(u < level / 2, 0.0, torch.where(u < level, 1.0, x)).to(x.dtype)


class Occlusion(Corruption):
    """A square patch of side ``size`` pixels set to 0, at a place drawn uniformly per image (the patch always lies
    wholly inside it)."""

    name, level, kind, label, probe_levels = "occlude", "size", int, "side of the missing square (pixels)", "0:14:8"

    def default_levels(self, image_shape):
        """From no patch to half the image's side, in at most 8 levels: 0:14:8 on 28 x 28, 0:4:5 on 8 x 8."""
        if image_shape is None or len(image_shape) != 2:
            return ""
        half = min(image_shape) // 2
        return f"0:{half}:{min(8, half + 1)}"

    def check_level(self, level):
        if not isinstance(level, int) or isinstance(level, bool) or level < 0:
            raise LatentAtlasError(f"{self.name}: size={level!r} must be a whole number of pixels >= 0")

    def check(self, level, image_shape=None):
        self.check_level(level)
        if image_shape is None or len(image_shape) != 2:
            raise LatentAtlasError(f"{self.name}: needs images (H x W), not samples of shape {image_shape}")
        if not 0 <= level <= min(image_shape):
            raise LatentAtlasError(f"{self.name}: a patch of side {level} does not fit in images of "
                                   f"{image_shape[0]} x {image_shape[1]}: give a size in 0..{min(image_shape)}")

    def apply(self, x, level, generator=None):
        import torch

        n, h, w = x.shape
        top = torch.randint(0, h - level + 1, (n, 1), generator=generator, device=generator_device(generator, x))
        left = torch.randint(0, w - level + 1, (n, 1), generator=generator, device=generator_device(generator, x))
        top, left = top.to(x.device), left.to(x.device)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = (rows >= top) & (rows < top + level)  # (N, H)
        in_cols = (cols >= left) & (cols < left + level)  # (N, W)
        return x.masked_fill(in_rows[:, :, None] & in_cols[:, None, :], 0.0)


class Rotation(Corruption):
    """A rotation by ``degrees`` about the image centre, counter-clockwise as the image is shown (row 0 on top), as
    ``numpy.rot90`` turns by 90; bilinear, with zeros where no pixel of the image lands."""

    name, level, label, probe_levels = "rotate", "degrees", "rotation (degrees, counter-clockwise)", "0:180:7"

    def default_levels(self, image_shape):
        return self.probe_levels if image_shape is not None and len(image_shape) == 2 else ""

    def check_level(self, level):
        super().check_level(level)
        if abs(level) > MAX_ROTATION:
            raise LatentAtlasError(f"{self.name}: degrees={level!r} is out of range: it must lie in "
                                   f"[-{MAX_ROTATION}, {MAX_ROTATION}]")

    def check(self, level, image_shape=None):
        self.check_level(level)
        if image_shape is None or len(image_shape) != 2:
            raise LatentAtlasError(f"{self.name}: needs images (H x W), not samples of shape {image_shape}")

    def apply(self, x, level, generator=None):
        import torch
        import torch.nn.functional as F

        if level % 360 == 0:  # the image itself, not its resampling (float rounding would blur it by ~1e-7)
            return x.clone()
        n, h, w = x.shape
        a = math.radians(level)
        c, s = math.cos(a), math.sin(a)
        # affine_grid maps each output pixel to where it samples the input, in coordinates normalised to [-1, 1]
        # per axis; the aspect ratio keeps the turn rigid on a non-square image.
        theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=torch.float64)
        grid = F.affine_grid(theta.to(x.device, torch.float32).expand(n, 2, 3), [n, 1, h, w], align_corners=False)
        out = F.grid_sample(x[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[:, 0].clamp_(0, 1).to(x.dtype)


def generator_device(generator: torch.Generator | None, x: Tensor) -> torch.device:
    """Where random numbers are drawn: the generator's own device, or the data's for torch's global generator."""
    return x.device if generator is None else generator.device


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (GaussianNoise(), SaltAndPepper(), Occlusion(), Rotation())}


def get_corruption(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        raise LatentAtlasError(f"unknown corruption {name!r}: choose one of {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def corrupt_images(x, name: str, level, image_shape: tuple[int, ...], seed: int = 0,
                   chunk: int = 8192) -> Tensor:
    """``x`` (N, ...) uint8 0..255 or floats in [0, 1] as (N, *image_shape) float32 pixels corrupted at ``level``,
    seeded: the same call gives the same pixels. Done in chunks, so that rotating 60,000 images needs little
    memory. Occlusion and rotation need ``image_shape`` (H, W); noise takes any."""
    import torch

    from .._tensors import as_tensor, to_unit_float

    corruption = get_corruption(name)
    image_shape = tuple(image_shape)
    corruption.check(level, image_shape if len(image_shape) == 2 else None)
    generator = torch.Generator().manual_seed(seed)
    x = as_tensor(x).reshape(len(x), *image_shape)
    return torch.cat([corruption.apply(to_unit_float(x[i : i + chunk]), level, generator)
                      for i in range(0, len(x), chunk)]) if len(x) else torch.zeros((0, *image_shape))


def training_corruption(train_noise: float, train_occlude: int, n_features: int | None):
    """The inputs' corruption of denoising training: ``(B, n_features)`` -> corrupted, noise then occlusion, drawn
    from torch's global generator; None when neither is asked for. Images are square (``n_features`` = side^2);
    occlusion refuses other samples."""
    steps = [(c, level) for c, level in ((CORRUPTIONS["noise"], train_noise), (CORRUPTIONS["occlude"], train_occlude))
             if level]
    if not steps:
        return None
    side = math.isqrt(n_features or 0)
    shape = (side, side) if side and side * side == n_features else None
    for c, level in steps:
        c.check(level, shape)

    def corrupt(x: Tensor) -> Tensor:  # (B, n_features) floats in [0, 1]
        images = x.reshape(len(x), *shape) if shape is not None else x[:, None, :]
        for c, level in steps:
            images = c.apply(images, level)
        return images.reshape(x.shape)

    return corrupt
