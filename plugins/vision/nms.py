"""Per-class non-maximum suppression in numpy (pure: no runtime import).

Boxes of different classes never suppress each other: the usual trick offsets each class's
boxes by a distance larger than any image, then runs one greedy NMS over all of them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["batched_nms", "nms"]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept, best score first (greedy NMS on x1,y1,x2,y2 boxes)."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float
) -> np.ndarray:
    """Indices kept by NMS run within each class, best score first."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    reach = float(boxes.max()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * reach)[:, None]
    return nms(shifted, scores, iou)
