"""Images to the DiT's token sequences and back: raw pixels at CPU scale, or a VAE's latents.

Both codecs pack p x p patches of a (B, C, H, W) tensor into tokens of C * p * p channels, the
layout Flux feeds its transformer (2 x 2 latent patches)."""

from __future__ import annotations

import torch


def pack(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C * p * p), rows first."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpack(tokens: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """The inverse of `pack` for a grid of (rows, cols) tokens."""
    b, _, d = tokens.shape
    rows, cols = grid
    c = d // (patch * patch)
    x = tokens.view(b, rows, cols, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, rows * patch, cols * patch)


class PixelCodec:
    """Pixels in [-1, 1] as the 'latent': no autoencoder to train or download at CPU scale."""

    kind = "pixels"

    def __init__(self, patch: int = 2):
        self.patch = patch
        self.channels = 3 * patch * patch

    def grid(self, height: int, width: int) -> tuple[int, int]:
        if height % self.patch or width % self.patch:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {self.patch}")
        return height // self.patch, width // self.patch

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) in [0, 1]."""
        return pack(images * 2 - 1, self.patch)

    def decode(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return ((unpack(tokens, grid, self.patch) + 1) / 2).clamp(0, 1)

    def describe(self) -> dict:
        return {"kind": self.kind, "patch": self.patch}


class VaeCodec:
    """diffusers AutoencoderKL latents, shifted and scaled as the DiT was trained on them (Flux's
    VAE has both a scaling and a shift factor), then packed 2 x 2."""

    kind = "vae"

    def __init__(self, vae, patch: int = 2, ref: str | None = None):
        self.vae = vae.eval().requires_grad_(False)
        self.patch = patch
        self.ref = ref
        self.down = 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = vae.config.latent_channels * patch * patch
        self.scale = float(vae.config.scaling_factor or 1.0)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)

    @classmethod
    def load(cls, ref: str, revision: str | None = None, patch: int = 2) -> "VaeCodec":
        from diffusers import AutoencoderKL

        # a pipeline folder keeps the VAE under vae/; a bare VAE folder has its config at the top
        try:
            vae = AutoencoderKL.from_pretrained(ref, subfolder="vae", revision=revision, use_safetensors=True)
        except (OSError, EnvironmentError):
            vae = AutoencoderKL.from_pretrained(ref, revision=revision, use_safetensors=True)
        return cls(vae, patch, ref)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        step = self.down * self.patch
        if height % step or width % step:
            raise ValueError(f"image size {height}x{width} is not a multiple of {step} (VAE downsampling x patch)")
        return height // step, width // step

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        latents = self.vae.encode((images * 2 - 1).to(param.device, param.dtype)).latent_dist.mean
        return pack(((latents - self.shift) * self.scale).float(), self.patch)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        param = next(self.vae.parameters())
        latents = unpack(tokens, grid, self.patch) / self.scale + self.shift
        images = self.vae.decode(latents.to(param.device, param.dtype)).sample.float()
        return ((images + 1) / 2).clamp(0, 1)

    def describe(self) -> dict:
        return {"kind": self.kind, "patch": self.patch, "ref": self.ref, "scale": self.scale, "shift": self.shift}
