"""Text-area estimate: the fraction of a frame covered by text-line-like boxes (OpenCV only, no OCR model).

Steps (the classic morphological text-region detector):
1. morphological gradient of the grey frame (character strokes give strong, thin gradients);
2. threshold at the larger of Otsu's level and `min_contrast`, then a horizontal closing that merges the characters of a line into one blob,
   and a horizontal opening that removes what stays narrower than a few characters (the stretches of long vertical edges,
   such as colour bars or poles, between text lines, which would join the lines into one blob);
3. connected components; a component counts as a text line when its height is within the configured range
   (relative to the frame height), it is wider than tall (`min_aspect`), gradient pixels fill enough of its
   box (`min_fill`) and its edges run both ways (`min_edge_balance`): glyphs have vertical stems and
   horizontal bars or curves, whereas horizontal lines (blinds, stripes, stairs) have edges of one
   direction only, and rows of vertical bars (fences, railings) almost only;
4. the score is the area of the union of those boxes over the frame area.
"""
import numpy as np

from .config import TextConfig

__all__ = ["text_area_fraction"]


def text_area_fraction(rgb: np.ndarray, cfg: TextConfig) -> float:
    """Fraction (0-1) of the frame `rgb` (H, W, 3) uint8 covered by text-like boxes."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    gradient = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    otsu, _ = cv2.threshold(gradient, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # Rendered text has sharp, high-contrast strokes: soft natural edges stay below `min_contrast`.
    _, binary = cv2.threshold(gradient, max(otsu, cfg.min_contrast), 255, cv2.THRESH_BINARY)
    close_w = max(3, int(round(h * cfg.min_char_height * 3)))
    line_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (close_w, 1))
    # Closing merges the characters of a line; opening with the same kernel then removes what stays narrower than
    # it, such as the parts of a long vertical edge (colour bars, poles) between text lines, which would
    # otherwise join the lines they cross into one blob too tall to be a line.
    connected = cv2.morphologyEx(cv2.morphologyEx(binary, cv2.MORPH_CLOSE, line_kernel), cv2.MORPH_OPEN, line_kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(connected, connectivity=8)
    edges_x = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0))  # (H, W) vertical edges
    edges_y = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))  # (H, W) horizontal edges
    mask = np.zeros((h, w), np.uint8)
    for x, y, bw, bh, _ in stats[1:]:  # row 0 is the background
        if not cfg.min_char_height * h <= bh <= cfg.max_char_height * h or bw < cfg.min_aspect * bh:
            continue
        fill = np.count_nonzero(binary[y : y + bh, x : x + bw]) / float(bw * bh)
        if fill < cfg.min_fill:
            continue
        ex, ey = float(edges_x[y : y + bh, x : x + bw].sum()), float(edges_y[y : y + bh, x : x + bw].sum())
        if min(ex, ey) >= cfg.min_edge_balance * max(ex, ey):
            mask[y : y + bh, x : x + bw] = 1
    return float(mask.mean())
