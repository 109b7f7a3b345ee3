"""Rate–distortion evaluation: MS-SSIM, Bjøntegaard BD-rate, and JPEG/WebP/aekit on a folder.

* MS-SSIM: Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image
  quality assessment" — 5 scales, 11×11 Gaussian window (σ = 1.5), K = (0.01, 0.03), the
  paper's exponents (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); negative contrast terms are
  clipped at 0 (as pytorch-msssim does). Colour images: the mean over R, G, B.
* BD-rate: Bjøntegaard 2001, "Calculation of average PSNR differences between RD-curves"
  (ITU-T VCEG-M33): fit log-rate as a cubic polynomial of PSNR for both curves, integrate
  both over the PSNR interval they share, and report the mean rate difference in percent
  (negative = fewer bits than the anchor for the same quality).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aekit.data import images
from aekit.errors import AekitError, DataError

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: JPEG's and WebP's points above this rate are left out of the BD-rate's anchor curve
ANCHOR_MAX_BPP = 2.5
JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

# CompressAI's published results on Kodak24 (bpp, PSNR-RGB dB): ANCHORS.md of the benchmark data (README, "Benchmark data")
ANCHORS = {
    "bmshj2018-factorized": [(0.123, 26.91), (0.288, 29.62), (0.440, 31.28), (0.967, 35.38),
                             (1.833, 39.62)],
    "bmshj2018-hyperprior": [(0.131, 27.58), (0.320, 30.97), (0.478, 32.84), (0.939, 36.74)],
    "JPEG (Pillow)": [(0.221, 23.78), (0.508, 29.04), (1.037, 32.79), (1.859, 36.33)],
}


# ------------------------------------------------------------------------------------ images
def read_image_alpha(path: str | Path) -> tuple[np.ndarray, bool]:
    """(uint8 (H, W) for grey files or (H, W, 3) otherwise, whether an alpha channel was
    dropped). The file is read by :func:`aekit.data.images.read_image`, the reader of every
    other command: EXIF orientation is applied and a 16-bit PNG is scaled to 8 bits (Pillow's
    own ``convert("L")`` clips it instead: a 16-bit photo came out white)."""
    arr = images.read_image(path)
    alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
    if alpha:  # LA / RGBA: the codec and the metrics take grey or RGB
        arr = arr[..., 0] if arr.shape[2] == 2 else arr[..., :3]
    return (arr * 255.0 + 0.5).astype(np.uint8), alpha


def read_image(path: str | Path) -> np.ndarray:
    """uint8 (H, W) for grey files, (H, W, 3) otherwise (alpha is dropped); see
    :func:`read_image_alpha`."""
    return read_image_alpha(path)[0]


def list_images(folder: str | Path) -> list[Path]:
    """The images under ``folder`` (subfolders too, as every aekit command reads a folder);
    none is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    return images.list_images(folder, required=True)


#: PSNR of an exact copy (a flat image JPEG or WebP codes losslessly): a mean over images
#: with one infinite term would be infinite and blank a whole curve
PSNR_CAP = 100.0


def psnr255(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of 8-bit images; an exact copy scores PSNR_CAP."""
    err = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_CAP if err == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / err))


# ----------------------------------------------------------------------------------- MS-SSIM
def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    return g / g.sum()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure of (N, 1, H, W) images in [0, 255] (valid window)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = win.numel()

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable, 'valid'; unfold+matmul is fast on CPU
        t = t.unfold(-1, k, 1) @ win  # (N, 1, H, W−k+1)
        return t.unfold(-2, k, 1) @ win  # (N, 1, H−k+1, W−k+1)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx**2
    syy = blur(y * y) - my**2
    sxy = blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
    return ssim.mean((1, 2, 3)), cs.mean((1, 2, 3))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 images (H, W) or (H, W, 3); images too small for 5 scales use as
    many as fit (weights renormalised) — below 11 pixels a side it is plain SSIM, and below
    3 it is NaN (a 1×1 window sees no contrast or structure: only brightness was compared,
    and an image scored 0.89 against its negative).

    Between scales, an odd side loses its last row or column (2×2 average pooling), close to
    Wang's MATLAB ``msssim.m`` (within 1.1e-3); ``pytorch_msssim`` and ``piq`` zero-pad
    instead, so on odd-sized images (CBSD68's 481×321) their values differ from these by up
    to 0.01; on even sizes (Kodak's 768×512) they agree within 1e-5."""
    x = torch.from_numpy(np.array(a, np.float32))  # float32 is ample for 8-bit images
    y = torch.from_numpy(np.array(b, np.float32))
    if x.shape != y.shape:
        raise AekitError(f"ms_ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[:, None]  # (C, 1, H, W)
    y = y[None, None] if y.dim() == 2 else y.permute(2, 0, 1)[:, None]
    side = min(x.shape[-2:])
    if side < 3:
        return math.nan
    win_size = min(11, side - (1 - side % 2))  # odd, ≤ side
    scales = 1
    while scales < 5 and side // 2**scales >= win_size:
        scales += 1
    weights = torch.tensor(MSSSIM_WEIGHTS[:scales], dtype=torch.float32)
    weights = weights / weights.sum()
    win = _gauss(win_size)
    vals = []
    for s in range(scales):
        ssim, cs = _ssim_terms(x, y, win)
        vals.append(torch.relu(ssim if s == scales - 1 else cs))
        if s < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stack = torch.stack(vals)  # (scales, C)
    return float(torch.prod(stack ** weights.view(-1, 1), dim=0).mean())


# ----------------------------------------------------------------------------------- BD-rate
def bd_rate(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float:
    """Bjøntegaard delta rate (%) of ``test`` against ``anchor``, each a list of (bpp, PSNR);
    NaN when the curves share no PSNR interval or have fewer than 4 points."""
    a = sorted((float(r), float(p)) for r, p in anchor if r > 0 and math.isfinite(p))
    t = sorted((float(r), float(p)) for r, p in test if r > 0 and math.isfinite(p))
    if len(a) < 4 or len(t) < 4:
        return float("nan")
    ra, pa = np.log([r for r, _ in a]), np.array([p for _, p in a])
    rt, pt = np.log([r for r, _ in t]), np.array([p for _, p in t])
    lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
    if hi <= lo:
        return float("nan")
    fa, ft = np.polyint(np.polyfit(pa, ra, 3)), np.polyint(np.polyfit(pt, rt, 3))
    avg = ((np.polyval(ft, hi) - np.polyval(ft, lo)) - (np.polyval(fa, hi) - np.polyval(fa, lo))) / (hi - lo)
    return float((math.exp(avg) - 1) * 100)


def psnr_at(curve: Sequence[tuple[float, float]], bpp: float) -> float:
    """PSNR interpolated (linearly in log-rate) at ``bpp``; NaN outside the curve."""
    pts = sorted(curve)
    rs = np.log([r for r, _ in pts])
    if not pts or not rs[0] <= math.log(bpp) <= rs[-1]:
        return float("nan")
    return float(np.interp(math.log(bpp), rs, [p for _, p in pts]))


# ------------------------------------------------------------------------ codecs on a folder
#: encoder settings of the baselines: each at its best, as people ship them. JPEG with
#: optimised Huffman tables (lossless: the same pixels; Pillow's default writes libjpeg's
#: generic tables, files up to 52 % bigger at low quality, so the optimised are 34 % smaller;
#: aekit's BD-rate against the default JPEG read −42.7 %, against this one −34 %) and 4:2:0
#: (Pillow's default; on PSNR it beats 4:4:4 here); WebP at its slowest, best method 6
#: (default 4: 2.4 % more bytes). CompressAI's "JPEG (Pillow)" anchors are the default.
BASELINE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"optimize": True}, "WEBP": {"method": 6}}


def pillow_codec(fmt: str, **options: Any) -> Callable[[np.ndarray, int], tuple[bytes, np.ndarray]]:
    """Encode + decode with Pillow at a quality; ``options`` override ``BASELINE_OPTIONS``."""
    from PIL import Image

    options = {**BASELINE_OPTIONS.get(fmt.upper(), {}), **options}

    def run(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, quality=int(quality), **options)
        data = buf.getvalue()
        with Image.open(io.BytesIO(data)) as im:
            out = np.asarray(im.convert("L" if img.ndim == 2 else "RGB"))
        return data, out

    return run


def evaluate_folder(images: list[Path], model: Any = None, msssim: bool = True,
                    progress: bool | None = None, refine_steps: int | None = None
                    ) -> dict[str, Any]:
    """Every image through aekit (every quality), JPEG and WebP; per-point means of bpp,
    PSNR (RGB, 0–255) and MS-SSIM, BD-rates of aekit against JPEG and WebP, and timings.
    ``refine_steps`` (default: the codec's, ``DEFAULT_REFINE_STEPS``; 0 for the plain
    encoder) encodes with :func:`aekit.codec.refine`; the timing includes the refinement of
    one quality, which is what compressing one file costs."""
    from tqdm.auto import tqdm

    from aekit import codec

    if refine_steps is None:
        refine_steps = codec.DEFAULT_REFINE_STEPS
    methods: dict[str, dict[Any, list[tuple[float, float, float]]]] = {
        "aekit": {}, "JPEG": {}, "WebP": {}}
    jpeg, webp = pillow_codec("JPEG"), pillow_codec("WEBP")
    times: list[float] = []
    n_q = codec.n_qualities(model) if model is not None else 0
    # progress None: a bar on a terminal only (tqdm's disable=None), never into a pipe or file
    bar = tqdm(images, desc="codec-eval", unit="img", disable=None if progress is None else not progress)
    for path in bar:
        img = read_image(path)
        pixels = img.shape[0] * img.shape[1]

        def record(name: str, key: Any, data: bytes, out: np.ndarray,
                   img: np.ndarray = img, pixels: int = pixels) -> None:
            methods[name].setdefault(key, []).append(
                (8 * len(data) / pixels, psnr255(out, img), ms_ssim(out, img) if msssim else math.nan))

        if model is not None:
            codec.check_image(img)  # the checks compress() makes
            t0 = time.perf_counter()
            h = codec.analyse(model, img)
            analyse_s = time.perf_counter() - t0
            for q in range(n_q):
                t0 = time.perf_counter()
                data = codec.encode_at(model, img, codec.refine(model, img, h, q, refine_steps), q)
                t1 = time.perf_counter()
                out = codec.decompress(model, data)
                if q == n_q // 2:  # one encode + one decode
                    times.append((t1 - t0) + (time.perf_counter() - t1) + analyse_s)
                record("aekit", q + 1, data, out)
        for q in JPEG_QUALITIES:
            record("JPEG", q, *jpeg(img, q))
        for q in WEBP_QUALITIES:
            record("WebP", q, *webp(img, q))
    curves: dict[str, list[dict[str, float]]] = {}
    for name, pts in methods.items():
        rows = []
        for key in sorted(pts):
            arr = np.array(pts[key], np.float64)
            rows.append({"quality": key, "bpp": float(arr[:, 0].mean()),
                         "psnr": float(arr[:, 1].mean()), "ms_ssim": _finite_mean(arr[:, 2])})
        if rows:
            curves[name] = rows
    result: dict[str, Any] = {"images": len(images), "curves": curves, "anchors_kodak": ANCHORS,
                              "refine_steps": refine_steps}
    if "aekit" in curves:
        ours = [(r["bpp"], r["psnr"]) for r in curves["aekit"]]
        result["bd_rate"] = {}
        for base in ("JPEG", "WebP"):
            # the anchor's cubic is fitted to its points up to ANCHOR_MAX_BPP: the rates aekit
            # covers, not JPEG's 4–8 bpp tail, which bends the fit (all points: −37.3 %
            # instead of −36.0 % vs JPEG on two CBSD68 photos)
            anchor = [(r["bpp"], r["psnr"]) for r in curves[base] if r["bpp"] <= ANCHOR_MAX_BPP]
            v = bd_rate(anchor, ours)
            result["bd_rate"][base] = v if math.isfinite(v) else None  # no PSNR overlap
        result["psnr_at"] = {
            f"{b:g}": {name: psnr_at([(r["bpp"], r["psnr"]) for r in rows], b)
                       for name, rows in curves.items()} for b in (0.15, 0.25, 0.5, 0.75, 1.0)}
        result["encode_decode_seconds_median"] = float(np.median(times)) if times else None
    return result


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values (MS-SSIM is NaN for an image under 3 pixels a side); NaN
    when there are none (MS-SSIM not computed)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def curve_label(name: str, result: dict[str, Any]) -> str:
    """A curve's name in tables and plots: the "aekit" curve of :func:`evaluate_folder` says
    which encoder made it (``aekit (--refine N)``), beside any other ``--refine`` curve."""
    steps = result.get("refine_steps")
    return f"{name} (--refine {steps})" if name == "aekit" and steps is not None else name


def plot_rd(result: dict[str, Any], path: str | Path, title: str = "") -> None:
    """bpp–PSNR curves of every method (and the published Kodak anchors, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aekit.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    styles = {"aekit": ("C3", "o"), "JPEG": ("C0", "s"), "WebP": ("C2", "^")}
    for name, rows in result["curves"].items():
        color, marker = styles.get(name, ("C1", "D") if name.startswith("aekit") else ("k", "."))
        ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], marker=marker, color=color,
                label=curve_label(name, result), ms=4)
    for name, pts in result.get("anchors_kodak", {}).items():
        if name.startswith("bmshj2018-factorized"):
            ax.plot(*zip(*pts), ls="--", color="grey", lw=1, label=f"{name} (Kodak, published)")
    # 0–2 bpp, widened to aekit's own points where they lie beyond (tiny images: a header
    # alone is many bits per pixel, and every curve fell off the plot)
    right = max([2.0] + [1.05 * r["bpp"] for name, rows in result["curves"].items()
                         if name.startswith("aekit") for r in rows])
    ax.set_xlim(0, right)
    shown = [r["psnr"] for rows in result["curves"].values() for r in rows if r["bpp"] <= right]
    shown += [p for pts in result.get("anchors_kodak", {}).values() for b, p in pts if b <= right]
    if shown:  # points off the right edge (JPEG q95 near 50 dB) must not stretch the axis
        ax.set_ylim(min(shown) - 1, max(shown) + 1)
    ax.set_xlabel("bits per pixel (from file sizes)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title(title or f"rate–distortion on {result['images']} images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def synthetic_photo(height: int = 96, width: int = 128, seed: int = 0, grey: bool = False) -> np.ndarray:
    """A deterministic photo-like test image (smooth shading, edges, texture, a little
    noise): the same uint8 array on every machine (numpy's PCG64 stream is stable)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    img = np.empty((height, width, 3))
    for c in range(3):
        a, b, ph = rng.uniform(0.5, 3.0, 3)
        img[..., c] = 0.45 + 0.25 * np.sin(a * 3 * xx + ph) * np.cos(b * 2 * yy)
    for _ in range(4):  # flat discs with sharp edges
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[mask] = rng.uniform(0.05, 0.95, 3)
    img += 0.06 * np.sin(40 * xx + 25 * yy)[..., None] * (xx[..., None] > 0.5)  # texture
    img += rng.normal(0, 0.01, img.shape)
    out = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if grey:
        out = (out @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    return out
