"""Image augmentation for encoder fine-tuning (trainer/finetune.py), on batches of RGB images on the training device.

Images are float tensors [B, 3, H, W] holding RGB values in 0..255 (what decoding a JPEG gives); `caffe` then makes the
encoder's input exactly as the product does (src/image/tensor.ts writeCaffeTensor): channels B, G, R, each minus the
ImageNet mean, no scaling. Every random draw comes from the given torch.Generator (CPU), so a seeded epoch replays.

  random_resized_crop  a random box of `scale` x the image area and aspect ratio in `ratio`, resampled (bilinear) to
                       `size` x `size`; boxes are always inside the image
  hflip                mirror the image; the caption's "left" and "right" are swapped (trainer.data.swap_map), the
                       same rule as the flipped-feature augmentation of trainer.train --hflip-aug
  color_jitter         brightness, contrast and saturation factors uniform in [1 - j, 1 + j] (torchvision's
                       definitions, fixed order), clamped to 0..255
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

# ImageNet channel means in B, G, R order (Keras 'caffe' preprocessing; src/image/tensor.ts CAFFE_MEAN_BGR)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class AugmentConfig:
    crop_scale: Tuple[float, float] = (0.6, 1.0)  # area fraction; captions name things, so no tiny crops
    crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    crop_p: float = 1.0  # probability of cropping (else the whole image)
    hflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    size: int = 224

    def to_dict(self) -> dict:
        return asdict(self)


def caffe(rgb: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 [B,3,H,W] → the encoder's input: BGR minus the ImageNet means (float32)."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
    return rgb.float().flip(1) - mean


def crop_boxes(n: int, height: int, width: int, scale, ratio, generator: torch.Generator,
               p: float = 1.0) -> torch.Tensor:
    """[n, 4] boxes (x0, y0, w, h) in pixels, torchvision's RandomResizedCrop sampling (10 tries, then the whole
    image). With probability 1 - p a box is the whole image."""
    area = height * width
    boxes = torch.tensor([[0.0, 0.0, float(width), float(height)]]).repeat(n, 1)
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for i in range(n):
        if float(torch.rand((), generator=generator)) >= p:
            continue
        for _ in range(10):
            target = area * float(torch.empty(()).uniform_(scale[0], scale[1], generator=generator))
            aspect = math.exp(float(torch.empty(()).uniform_(log_r[0], log_r[1], generator=generator)))
            w = math.sqrt(target * aspect)
            h = math.sqrt(target / aspect)
            if 0 < w <= width and 0 < h <= height:
                x0 = float(torch.rand((), generator=generator)) * (width - w)
                y0 = float(torch.rand((), generator=generator)) * (height - h)
                boxes[i] = torch.tensor([x0, y0, w, h])
                break
    return boxes


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resampling of each image's box (x0, y0, w, h in pixels) to size x size (pixel centres mapped as
    align_corners=False does). A whole-image box at the same size returns the image itself."""
    B, _, H, W = images.shape
    boxes = boxes.to(images.device, torch.float32)
    x0, y0, w, h = boxes.unbind(1)
    # affine map from output coordinates in [-1, 1] to input coordinates in [-1, 1]
    theta = torch.zeros(B, 2, 3, device=images.device)
    theta[:, 0, 0] = w / W
    theta[:, 0, 2] = (2 * x0 + w) / W - 1
    theta[:, 1, 1] = h / H
    theta[:, 1, 2] = (2 * y0 + h) / H - 1
    grid = F.affine_grid(theta, [B, 3, size, size], align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if H == size and W == size:  # whole-image boxes keep their pixels exactly (no float32 grid round-off)
        whole = (x0 == 0) & (y0 == 0) & (w == W) & (h == H)
        out = torch.where(whole.view(-1, 1, 1, 1), images.float(), out)
    return out


def jitter_factors(n: int, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """[n, 3] brightness, contrast and saturation factors, each uniform in [1 - j, 1 + j]."""
    lo = torch.tensor([1 - cfg.brightness, 1 - cfg.contrast, 1 - cfg.saturation])
    hi = torch.tensor([1 + cfg.brightness, 1 + cfg.contrast, 1 + cfg.saturation])
    return lo + (hi - lo) * torch.rand(n, 3, generator=generator)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (_LUMA[0] * x[:, 0] + _LUMA[1] * x[:, 1] + _LUMA[2] * x[:, 2]).unsqueeze(1)


def color_jitter(rgb: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_brightness, adjust_contrast, adjust_saturation (in that order) with per-image factors
    [B, 3], on RGB 0..255, each clamped to 0..255."""
    f = factors.to(rgb.device, torch.float32).view(-1, 3, 1, 1, 1).unbind(1)
    x = (rgb * f[0]).clamp(0, 255)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + f[1] * (x - mean)).clamp(0, 255)
    g = _gray(x)
    return (g + f[2] * (x - g)).clamp(0, 255)


def augment(rgb: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator,
            boxes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, dict]:
    """RGB 0..255 [B,3,H,W] → (augmented RGB [B,3,size,size], flipped [B] bool, the draws). Crop, then flip, then
    colour jitter. The caller swaps the caption words of the flipped images (`flip_ids`)."""
    B, _, H, W = rgb.shape
    if boxes is None:
        boxes = crop_boxes(B, H, W, cfg.crop_scale, cfg.crop_ratio, generator, cfg.crop_p)
    flipped = torch.rand(B, generator=generator) < cfg.hflip_p
    factors = jitter_factors(B, cfg, generator)
    x = resized_crop(rgb, boxes, cfg.size)
    fl = flipped.to(x.device)
    x = torch.where(fl.view(-1, 1, 1, 1), x.flip(3), x)
    if cfg.brightness or cfg.contrast or cfg.saturation:
        x = color_jitter(x, factors)
    return x, flipped, {"boxes": boxes, "factors": factors}


def flip_ids(ids: torch.Tensor, flipped_rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Caption ids [N, T] with left↔right swapped (`table`: trainer.data.swap_map) in the rows whose image was
    flipped (flipped_rows [N] bool)."""
    table = table.to(ids.device)
    return torch.where(flipped_rows.to(ids.device).view(-1, 1), table[ids], ids)
