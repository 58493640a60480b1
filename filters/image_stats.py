"""Pixel statistics the common gates compare between source and target: how flat a picture is,
how far it moved, how sharp and how noisy it is, how blocky its compression is, and how much of
its structure it shares with another picture. Each works on a boolean `region` (the part of the
picture an edit must keep), so a local edit is judged only where nothing should have changed.

All of them are cheap: a few OpenCV filters on a greyscale or colour copy, no model."""

from __future__ import annotations

import cv2
import numpy as np

STRUCTURE_SIDE = 128  # structure is compared coarsely: fine texture (brush strokes, grain) fades out
MEAN_OF_CHANNELS = np.full((1, 3), 1 / 3, np.float32)
IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # cancels smooth ramps
MEAN_ABS_TO_SIGMA = float(np.sqrt(np.pi / 2) / 6.0)  # Immerkaer's kernel: mean |response| of Gaussian noise -> its sigma
NOISE_BLOCK_PX = 16
NOISE_FLOOR_QUANTILE = 0.2


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def full_region(rgb: np.ndarray) -> np.ndarray:
    return np.ones(rgb.shape[:2], bool)


def intensity_std(rgb: np.ndarray) -> float:
    """Spread of grey levels, 0-255: about 0 for a blank or single-colour picture."""
    return float(grey(rgb).std())


def changed_fraction(source: np.ndarray, target: np.ndarray, threshold: int = 8) -> float:
    """Share of pixels whose largest channel difference exceeds `threshold` (0-255): 0 for a
    target handed back unchanged or merely re-encoded."""
    diff = np.abs(source.astype(np.int16) - target.astype(np.int16)).max(axis=2)
    return float((diff > threshold).mean())


def _masked_fill(values: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`values` with everything outside `region` set to the region's mean, so the hidden part
    carries no structure of its own."""
    filled = values.copy()
    filled[~region] = values[region].mean() if region.any() else 0.0
    return filled


def _phase_translation(a: np.ndarray, b: np.ndarray, small_region: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, peak response) of `b` against `a`, both already at the small size, over the region."""
    # the region's edge is softened, else its outline alone would correlate perfectly at zero shift
    soft = cv2.GaussianBlur(small_region.astype(np.float32), (0, 0), 2.0) * small_region
    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F) * soft
    a = (_masked_fill(a, small_region) - a[small_region].mean()) * window
    b = (_masked_fill(b, small_region) - b[small_region].mean()) * window
    (dx, dy), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32))
    return dx, dy, response


def _gradient_magnitude(g: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(g, (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def phase_shift(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """Translation of `target` against `source` over `region`, in pixels of the full picture, by
    phase correlation at a 256-pixel long side: (shift as a fraction of the long side, peak
    response). It is measured twice, on the grey levels and on their gradient magnitude, and the
    smaller is kept: a real shift moves both, while a restyle fools one at a time (line art draws
    a step as a line, which moves the grey-level peak; flat paint moves the gradient one). An
    unrelated pair has a weak, arbitrary peak; an aligned pair a shift near 0."""
    height, width = source.shape[:2]
    long_side = max(height, width)
    scale = min(1.0, 256 / long_side)
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    small_region = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if small_region.sum() < 64:
        return 0.0, 0.0
    a = cv2.resize(grey(source), size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(grey(target), size, interpolation=cv2.INTER_AREA)
    views = [_phase_translation(a, b, small_region), _phase_translation(_gradient_magnitude(a), _gradient_magnitude(b), small_region)]
    dx, dy, response = min(views, key=lambda v: np.hypot(v[0], v[1]))
    return float(np.hypot(dx, dy) / scale / long_side), float(response)


def _band(values: np.ndarray, fine: float, coarse: float) -> np.ndarray:
    low = cv2.GaussianBlur(values, (0, 0), coarse) if coarse > 0 else values
    return (cv2.GaussianBlur(values, (0, 0), fine) if fine > 0 else values) - low


def sharpness(rgb: np.ndarray, region: np.ndarray) -> float:
    """Laplacian variance over the variance of a coarse band (sigma 2-4 px): the finest detail
    relative to the picture's own contrast, so a tone curve leaves it where it was and a blur
    takes it down by an order of magnitude."""
    g = grey(rgb)
    inner = _interior(region, 3)
    if inner.sum() < 16:
        return 0.0
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    coarse = _band(g, 2.0, 4.0)
    return float(lap[inner].var() / max(coarse[inner].var(), 1e-3))


def noise_sigma(rgb: np.ndarray, region: np.ndarray) -> float:
    """Robust estimate of the added noise, 0-255 units: Immerkaer's estimate (mean absolute
    response of a kernel that cancels smooth ramps) per colour channel, averaged over channels
    (chroma noise partly cancels in grey), taken in 16-pixel blocks, and the 20th percentile of
    the blocks. Edges and texture raise only the blocks they cross; white noise raises every
    block, so the low percentile reads the noise and not the picture's detail."""
    inner = _interior(region, 2)
    if inner.sum() < 16:
        return 0.0
    response = cv2.transform(np.abs(cv2.filter2D(rgb.astype(np.float32), -1, IMMERKAER)), MEAN_OF_CHANNELS)
    weight = inner.astype(np.float32)
    blocks = (max(1, rgb.shape[1] // NOISE_BLOCK_PX), max(1, rgb.shape[0] // NOISE_BLOCK_PX))
    # an area resize is the mean over each block: of the response inside the region, and of the region
    summed = cv2.resize(response * weight, blocks, interpolation=cv2.INTER_AREA)
    cover = cv2.resize(weight, blocks, interpolation=cv2.INTER_AREA)
    full = cover >= 0.5
    if full.sum() < 4:  # too few blocks for a floor: the mean over the region
        return MEAN_ABS_TO_SIGMA * float(response[inner].mean())
    return MEAN_ABS_TO_SIGMA * float(np.quantile(summed[full] / cover[full], NOISE_FLOOR_QUANTILE))


def colour_noise_sigma(rgb: np.ndarray, region: np.ndarray) -> float:
    """The noise no single colour direction explains, 0-255 units: per 16-pixel block, the
    smallest eigenvalue of the 3x3 covariance of the channels' Immerkaer responses (the
    principal-component noise estimate), as a sigma; the 20th percentile of the blocks. Texture,
    shading and edges vary mostly along one colour (a tinted surface is a multiple of one
    texture), so they stay out of it; noise drawn per channel adds to every direction. Grain that
    is the same in all channels does not show here (noise_sigma sees it)."""
    inner = _interior(region, 2)
    if inner.sum() < 16:
        return 0.0
    response = cv2.filter2D(rgb.astype(np.float32), -1, IMMERKAER)
    weight = inner.astype(np.float32)
    blocks = (max(1, rgb.shape[1] // NOISE_BLOCK_PX), max(1, rgb.shape[0] // NOISE_BLOCK_PX))
    cover = cv2.resize(weight, blocks, interpolation=cv2.INTER_AREA)
    full = cover >= 0.5
    if full.sum() < 4:  # too few blocks for a floor: one covariance over the region
        values = response[inner]
        return float(np.sqrt(max(np.linalg.eigvalsh(values.T @ values / len(values))[0], 0.0)) / 6.0)
    moments = np.empty((int(full.sum()), 3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            mean = cv2.resize(response[..., i] * response[..., j] * weight, blocks, interpolation=cv2.INTER_AREA)[full] / cover[full]
            moments[:, i, j] = moments[:, j, i] = mean
    smallest = np.maximum(np.linalg.eigvalsh(moments)[:, 0], 0.0)
    return float(np.sqrt(np.quantile(smallest, NOISE_FLOOR_QUANTILE)) / 6.0)  # the kernel's L2 norm is 6


def blockiness(rgb: np.ndarray, region: np.ndarray) -> float:
    """JPEG's 8x8 blocks: the mean jump across block borders over the mean jump elsewhere,
    both ways; about 1 for a clean picture, well above 1 once heavy compression leaves seams."""
    g = grey(rgb)
    ratios = []
    for axis in (0, 1):
        jumps = np.abs(np.diff(g, axis=axis))
        keep = region[:-1, :] & region[1:, :] if axis == 0 else region[:, :-1] & region[:, 1:]
        index = np.arange(jumps.shape[axis]) % 8 == 7
        border = keep & (index[:, None] if axis == 0 else index[None, :])
        inside = keep & ~(index[:, None] if axis == 0 else index[None, :])
        if border.sum() < 16 or inside.sum() < 16:
            continue
        ratios.append(jumps[border].mean() / max(jumps[inside].mean(), 1e-3))
    return float(np.mean(ratios)) if ratios else 1.0


def structure_agreement(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Correlation of the two pictures' coarse greyscale (long side 128 px, local mean removed)
    inside `region`: about 1 for the same scene however it was toned, about 0 for an unrelated
    one. Taking away the local mean keeps a global brightness or colour change out of it."""
    height, width = source.shape[:2]
    scale = STRUCTURE_SIDE / max(height, width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small_region = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    small_region = _interior(small_region, 1)
    if small_region.sum() < 16:
        return 1.0  # nothing left to compare: the gate has no evidence either way
    a, b = (cv2.resize(grey(rgb), size, interpolation=cv2.INTER_AREA) for rgb in (source, target))
    a, b = a - cv2.GaussianBlur(a, (0, 0), 8), b - cv2.GaussianBlur(b, (0, 0), 8)
    a, b = a[small_region], b[small_region]
    if a.std() < 1e-3 or b.std() < 1e-3:
        return 0.0 if (a.std() < 1e-3) != (b.std() < 1e-3) else 1.0
    return float(np.corrcoef(a, b)[0, 1])


def _interior(region: np.ndarray, pixels: int) -> np.ndarray:
    """`region` shrunk by `pixels`, so filters that reach across its edge are not counted; the
    picture's own border counts as inside."""
    if region.all():
        return region
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.erode(region.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
