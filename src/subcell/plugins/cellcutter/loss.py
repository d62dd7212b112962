"""The cellcutter loss (Din & Yu 2021, eq. 1), with the cross-patch term in O(N k^2).

For patch outputs ``y_i`` (probabilities, zero outside their ``k x k`` patch) on a common
canvas and a foreground mask ``M``::

    L = sum_i [ -sum(y_i) + lambda * sum(y_i * sum_{j != i} -log_b(1 - y_j))
                + beta * sum(y_i * (1 - M)) ] / N

The first term rewards area, the second punishes two patches claiming the same pixel, the
third punishes claiming background.

Normalisation (our choice, stated because the paper writes plain sums): sums over pixels,
**mean over patches** (divided by ``N``), as the public code does. The loss of a patch is then
in pixel units: at convergence it approaches minus the mean cell area. Batches of different
sizes (windows with more or fewer cells) weigh each patch equally.

Logarithm base: the paper balances the area gain against the overlap penalty at
``y_j = 0.5`` (eq. 3: ``-lambda * y * log 0.5 = lambda / 3.32 * y``), which holds for the
base-10 logarithm (``log10 2 = 1 / 3.32``), so ``lambda = 3.32`` is "balanced" only in base 10
(natural log: 1.44). ``log_base=10`` is the default; ``log_base=math.e`` reproduces a natural-log
implementation.

The cross term ``sum_{j != i} log(1 - y_j)`` at each pixel of patch ``i`` is computed by
scatter-adding every patch's ``log(1 - y)`` onto the flattened canvas, gathering the sums back
at each patch's pixels and subtracting the patch's own value. Pixels of a patch that fall
outside the canvas take no part in the cross term (they still count in the area and mask
terms).
"""

from __future__ import annotations

import math

import torch

__all__ = ["CellCutterLoss", "cross_patch_log_sum"]


def cross_patch_log_sum(
    log_q: torch.Tensor, origins: torch.Tensor, canvas_shape: tuple[int, int]
) -> torch.Tensor:
    """For every pixel of every patch, the sum of the *other* patches' values there.

    Parameters
    ----------
    log_q
        ``(N, k, k)`` per-patch values (here ``log(1 - y)``).
    origins
        ``(N, 2)`` integer top-left corners of the patches on the canvas (y, x); patches may
        stick out of the canvas.
    canvas_shape
        ``(H, W)`` of the canvas.

    Returns
    -------
    torch.Tensor
        ``(N, k, k)``: ``sum_{j != i} log_q_j`` at each pixel of patch ``i``, 0 where the pixel
        lies outside the canvas. Differentiable in ``log_q``.
    """
    n, ky, kx = log_q.shape
    height, width = int(canvas_shape[0]), int(canvas_shape[1])
    origins = origins.to(device=log_q.device, dtype=torch.long).reshape(n, 2)
    ys = origins[:, 0, None, None] + torch.arange(ky, device=log_q.device)[None, :, None]
    xs = origins[:, 1, None, None] + torch.arange(kx, device=log_q.device)[None, None, :]
    flat = ys * width + xs
    all_inside = bool(
        (origins.min() >= 0)
        & (origins[:, 0].max() + ky <= height)
        & (origins[:, 1].max() + kx <= width)
    )
    if not all_inside:
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        # Pixels off the canvas go to one extra bin at the end, which nobody reads.
        flat = torch.where(inside, flat, torch.full_like(flat, height * width))
    canvas = log_q.new_zeros(height * width + 1)
    canvas = canvas.index_add(0, flat.reshape(-1), log_q.reshape(-1))
    others = canvas[flat] - log_q
    if all_inside:
        return others
    return torch.where(inside, others, torch.zeros_like(others))


class CellCutterLoss(torch.nn.Module):
    """Area reward, cross-patch overlap penalty and mask penalty of Din & Yu (2021).

    Parameters
    ----------
    lambda_
        Weight of the overlap term (paper: 3.32, "balanced" for ``log_base=10``).
    beta
        Weight of the outside-mask term (paper: 15).
    log_base
        Base of the logarithm in the overlap term (see the module docstring).
    eps
        ``1 - y`` is clamped to at least ``eps`` before the logarithm.
    """

    def __init__(
        self,
        lambda_: float = 3.32,
        beta: float = 15.0,
        *,
        log_base: float = 10.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if log_base <= 0 or log_base == 1:
            raise ValueError(f"log_base must be positive and not 1, got {log_base}")
        self.lambda_ = float(lambda_)
        self.beta = float(beta)
        self.log_base = float(log_base)
        self.eps = float(eps)

    def forward(
        self,
        probabilities: torch.Tensor,
        origins: torch.Tensor,
        canvas_shape: tuple[int, int],
        mask: torch.Tensor,
        *,
        logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of one batch (patches of one window).

        Parameters
        ----------
        probabilities
            ``(N, 1, k, k)`` (or ``(N, k, k)``) patch outputs in ``[0, 1]``, in image
            orientation (augmentation already undone).
        origins
            ``(N, 2)`` integer patch origins relative to the canvas (y, x).
        canvas_shape
            ``(H, W)`` of the canvas.
        mask
            Foreground-mask patches, same shape as ``probabilities`` (1 = foreground).
        logits
            Optional pre-sigmoid values the probabilities came from; when given,
            ``log(1 - y)`` is taken as ``-softplus(logits)``, exact and with a gradient even
            where the sigmoid saturates (``probabilities`` must then be ``sigmoid(logits)``).

        Returns
        -------
        torch.Tensor
            Scalar: the sum over pixels, mean over patches.
        """
        y = probabilities.reshape(probabilities.shape[0], *probabilities.shape[-2:])
        m = mask.reshape(y.shape).to(y.dtype)
        n = y.shape[0]
        if n == 0:
            return y.sum()
        if logits is None:
            log_q = torch.log((1.0 - y).clamp_min(self.eps))
        else:
            # log(1 - sigmoid(z)) = -softplus(z), unclamped.
            log_q = -torch.nn.functional.softplus(logits.reshape(y.shape))
        others = cross_patch_log_sum(log_q, origins, canvas_shape) / math.log(self.log_base)
        area = y.sum()
        overlap = -(y * others).sum()
        outside = (y * (1.0 - m)).sum()
        return (-area + self.lambda_ * overlap + self.beta * outside) / n
