"""Softmax, log-softmax, log-sum-exp, negative log-likelihood and cross-entropy.

Every exponential here is taken of ``z - max(z)``, a non-positive number, so nothing
overflows for logits of any size (claims S1 and S2 of the book's source). Semantics,
argument order and defaults are those of ``torch.nn.functional``.
"""

from __future__ import annotations

import math

import numpy as np

from .autodiff import Function
from .parallel import halves
from .validation import (check_array, check_choice, check_dim, check_float_array,
                         check_float_dtype, check_int, check_real, check_same_dtype)

__all__ = ["softmax", "log_softmax", "logsumexp", "nll_loss", "cross_entropy"]

REDUCTIONS = ("none", "mean", "sum")


def _shifted_max(z, dim):
    """max(z) along ``dim`` (kept), with infinite maxima replaced by 0 so that
    ``z - m`` is never ``inf - inf`` when the max is the only infinite entry."""
    m = np.max(z, axis=dim, keepdims=True, initial=-np.inf)  # -inf for an empty dim
    return np.where(np.isfinite(m), m, np.zeros((), z.dtype))


class _Softmax(Function):
    @staticmethod
    def forward(ctx, z, dim):
        # initial=-inf: the max over an empty dim (its softmax is empty too). A row
        # with +inf, or of -inf only, gives PyTorch's NaN (inf - inf), without a warning.
        with np.errstate(invalid="ignore"):
            e = np.exp(z - np.max(z, axis=dim, keepdims=True, initial=-np.inf))
            y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0, as in PyTorch
            return y * (grad - (grad * y).sum(axis=ctx.dim, keepdims=True)), None


class _LogSoftmax(Function):
    @staticmethod
    def forward(ctx, z, dim):
        rows = _as_rows(z, dim)
        out, e = np.empty_like(rows), np.empty_like(rows)
        norm = np.empty(rows.shape[:1] + (1,) + rows.shape[2:], rows.dtype)
        _by_blocks(_log_softmax_rows, out, e, norm, rows)
        # softmax = e / norm: the backward pass needs no second exp.
        ctx.save_for_backward(e, norm)
        ctx.shape = z.shape
        return out.reshape(z.shape)

    @staticmethod
    def backward(ctx, grad):
        e, norm = ctx.saved
        dz = np.empty_like(e)
        _by_blocks(_log_softmax_grad_rows, dz, grad.reshape(e.shape), e, norm)
        return dz.reshape(ctx.shape), None


def _log_softmax_rows(out, e, norm, z):
    """Along axis 1: ``e = exp(z - max z)``, ``norm = sum(e)`` and
    ``out = (z - max z) - log(norm)``, written into the given arrays."""
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=e)
    np.sum(e, axis=1, keepdims=True, out=norm)
    out -= np.log(norm)


def _exp_rows(e, peak, norm, z):
    """Along axis 1: ``peak = max z``, ``e = exp(z - peak)`` and ``norm = sum(e)``,
    written into the given arrays."""
    np.max(z, axis=1, keepdims=True, out=peak)
    np.subtract(z, peak, out=e)
    np.exp(e, out=e)
    np.sum(e, axis=1, keepdims=True, out=norm)


def _log_softmax_grad_rows(dz, g, e, norm):
    """``dz = g - softmax * sum(g)`` along axis 1, with ``softmax = e / norm``."""
    np.multiply(e, g.sum(axis=1, keepdims=True) / norm, out=dz)
    np.subtract(g, dz, out=dz)


class _LogSumExp(Function):
    @staticmethod
    def forward(ctx, z, dims, keepdim):
        ctx.shape = z.shape
        if z.ndim == 0:  # one value: it is its own log-sum-exp
            z, dims, keepdim = z.reshape(1), (0,), False
        m = _shifted_max(z, dims)
        # log(0) = -inf: every entry -inf, or none; exp(inf) = inf: a +inf entry
        with np.errstate(divide="ignore", over="ignore"):
            out = m + np.log(np.exp(z - m).sum(axis=dims, keepdims=True))
        ctx.save_for_backward(z, out)
        ctx.dims = dims
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        z, out = ctx.saved
        grad = np.expand_dims(grad, ctx.dims) if grad.ndim < z.ndim else grad
        with np.errstate(invalid="ignore", over="ignore"):
            return (grad * np.exp(z - out)).reshape(ctx.shape), None, None


def _as_rows(z, dim):
    """``z`` seen as (outer, n, inner) with ``n`` the length of ``dim`` (a view when z
    is contiguous); a 0-d ``z`` is one row of one value."""
    if z.ndim == 0:
        return z.reshape(1, 1, 1)
    return z.reshape(math.prod(z.shape[:dim]), z.shape[dim], math.prod(z.shape[dim + 1:]))


#: The softmax passes run on blocks of rows of about this many values, so that the
#: second and later passes over a block find it in cache.
BLOCK_VALUES = 1 << 16


def _by_blocks(fill, *arrays):
    """``fill(*blocks)`` on consecutive blocks of rows (axis 0) of ``arrays``, the two
    halves of the rows at once (:func:`fancydl.parallel.halves`); nothing to do for
    empty arrays (an empty ``dim`` included)."""
    if arrays[0].size == 0:
        return

    def run(*half):
        step = max(1, BLOCK_VALUES // (half[0].size // half[0].shape[0]))
        for start in range(0, half[0].shape[0], step):
            fill(*(a[start:start + step] for a in half))

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN/inf: torch's
        halves(run, *arrays)


def _cast_input(op, input, dtype):
    """``input`` cast to ``dtype`` before the operation, as PyTorch's ``dtype=`` does
    (the gradient comes back in the input's dtype); ``dtype=None`` keeps a float input
    as it is."""
    if dtype is None:
        check_float_array(op, "input", input)
        return input
    dtype = check_float_dtype(op, dtype)
    check_array(op, "input", input)
    if input.dtype.kind not in "biuf":
        raise TypeError(f"{op}: input must have a real dtype to be cast to {dtype}, got "
                        f"{input.dtype}")
    return input.astype(dtype, copy=False)


def softmax(input, dim, dtype=None):
    """Softmax along ``dim``: ``exp(z) / sum(exp(z))``, computed as ``exp(z - max z)``.

    Parameters
    ----------
    input : ndarray, float32 or float64, any shape
    dim : int
        The dimension that sums to 1 (negative counts from the end).
    dtype : float32 or float64, optional
        Cast the input to it first (then the input may also be an integer or bool
        array), as PyTorch does; the gradient is cast back to the input's dtype.

    Returns
    -------
    ndarray of ``input``'s shape, of ``dtype`` (default: ``input``'s)
        Over an empty ``dim`` the result is empty; a 0-d input gives 1, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.softmax(np.array([1000.0, 0.0]), dim=0)
    array([1., 0.])
    """
    input = _cast_input("softmax", input, dtype)
    return _Softmax.apply(input, check_dim("softmax", "dim", dim, input.ndim))


def log_softmax(input, dim, dtype=None):
    """``log(softmax(input, dim))`` computed as ``(z - m) - log(sum(exp(z - m)))``.

    Parameters
    ----------
    input : ndarray, float32 or float64, any shape
    dim : int
    dtype : float32 or float64, optional
        As in :func:`softmax`: the input is cast to it first.

    Returns
    -------
    ndarray of ``input``'s shape, of ``dtype`` (default: ``input``'s)
        Over an empty ``dim`` the result is empty; a 0-d input gives 0, as in PyTorch.

    Notes
    -----
    The rows are processed in cache-sized blocks, the two halves of them on two
    threads. Inside :func:`fancydl.vjp` the pullback keeps ``exp(z - max z)`` (one
    array of the input's size, as PyTorch keeps the output) and its row sums, so the
    backward pass needs no exponential.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> fancydl.log_softmax(np.array([1000.0, 0.0, -1000.0]), dim=0)
    array([    0., -1000., -2000.])
    """
    input = _cast_input("log_softmax", input, dtype)
    return _LogSoftmax.apply(input, check_dim("log_softmax", "dim", dim, input.ndim))


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input)))`` over ``dim`` without overflow, like ``torch.logsumexp``.

    Parameters
    ----------
    input : ndarray, float32 or float64
    dim : int or tuple of int
    keepdim : bool

    Returns
    -------
    ndarray
        ``input``'s shape without ``dim`` (or with size 1 there if ``keepdim``); a 0-d
        input is returned as it is. Over an empty ``dim`` the result is ``-inf`` (the
        log of an empty sum) and the gradient is empty, as in PyTorch.
    """
    check_float_array("logsumexp", "input", input)
    given = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    dims = tuple(check_dim("logsumexp", "dim", d, input.ndim) for d in given)
    if len(set(dims)) != len(dims):
        raise ValueError(f"logsumexp: dim must name each dimension once, got {dim!r} "
                         f"for an input with {input.ndim} dimensions")
    if not dims and input.ndim > 0:
        raise ValueError(f"logsumexp: dim must name at least one dimension, got {dim!r}")
    return _LogSumExp.apply(input, tuple(sorted(dims)), bool(keepdim))


# --- losses -------------------------------------------------------------------------

class _ClassIndexLoss(Function):
    """Weighted, label-smoothed negative log-likelihood of class indices.

    With log-probabilities ``logp`` (N, C, ...), per item ``i``: ``v_i`` is 1 unless
    its target is ``ignore_index``, ``w_i = v_i * weight[t_i]``, and

        loss_i = (1 - eps) * (-w_i logp[i, t_i]) + eps / C * (-v_i sum_c weight_c logp[i, c])

    'mean' divides the total by ``sum_i w_i`` (PyTorch's weighted mean). An ignored item
    (``v_i = 0``) is left out, not multiplied by zero: its loss is exactly 0 even where
    its log-probabilities are -inf or NaN, as in PyTorch.

    ``scores`` are the log-probabilities themselves (``nll_loss``) or, with
    ``from_logits``, logits whose log-softmax is taken here (``cross_entropy``). The
    fused form never materializes ``logp`` and its backward is the closed form
    ``softmax(z) - one_hot(t)`` (weighted, smoothed and scaled as above).
    """

    @staticmethod
    def forward(ctx, scores, weight, target, ignore_index, reduction, smoothing,
                from_logits):
        n_classes = scores.shape[1]
        valid = target != ignore_index  # every item is ignored when there is no class
        safe_target = np.where(valid, target, 0)
        class_weight = np.ones(n_classes, scores.dtype) if weight is None else weight
        zero = np.zeros((), scores.dtype)
        w = np.where(valid, class_weight[safe_target], zero) if n_classes else \
            np.zeros(target.shape, scores.dtype)
        log_probs = _LogProbabilities(scores, from_logits)
        # Non-finite scores give PyTorch's inf and NaN (0 * inf, inf - inf), without a
        # warning; an ignored item's term is dropped, whatever its scores.
        with np.errstate(invalid="ignore", over="ignore"):
            loss = (1 - smoothing) * np.where(valid, -w * log_probs.at(safe_target), zero)
            if smoothing > 0:  # PyTorch's order: masked, then scaled by eps / C
                smooth = np.where(valid, -log_probs.weighted_sum(class_weight), zero)
                loss += smooth * _per_class(smoothing, n_classes)
            total = loss.sum()
        denominator = w.sum()
        ctx.save_for_backward(log_probs, class_weight, safe_target, valid, w, loss)
        ctx.reduction, ctx.smoothing, ctx.denominator = reduction, smoothing, denominator
        if reduction == "none":
            return loss.astype(scores.dtype, copy=False)
        if reduction == "sum":
            return np.asarray(total, dtype=scores.dtype)
        # No weight behind the mean (every target ignored, or of weight 0): PyTorch's
        # 0/0 = nan, label smoothing or not.
        return np.asarray(total / denominator if denominator != 0 else np.nan,
                          dtype=scores.dtype)

    @staticmethod
    def backward(ctx, grad):
        log_probs, class_weight, target, valid, w, loss = ctx.saved
        n_classes, eps = log_probs.shape[1], ctx.smoothing
        # A mean over no weight (D = 0) is nan, and so is its gradient, as in PyTorch;
        # inf * 0 is NaN there too.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            per_item = grad / ctx.denominator if ctx.reduction == "mean" else grad
            # Ignored items get exactly 0, even when every item is ignored (0/0 above).
            per_item = np.where(valid, per_item, np.zeros((), log_probs.dtype))
            at_target = -(1 - eps) * per_item * w       # d loss / d logp[i, t_i]
            # d loss / d logp[i, c] = -spread_i w_c
            spread = _per_class(eps, n_classes) * per_item * valid
            g_logp_rows = at_target - spread * class_weight.sum()  # sum_c d loss/d logp_ic
            g_scores = log_probs.pull_back(g_logp_rows)  # softmax * (-row sum), or zeros
            _add_at_target(g_scores, target, at_target)
            if eps > 0:
                g_scores -= spread[:, None] * _class_axis(class_weight, g_scores.ndim)
            g_weight = None
            if ctx.needs_input_grad[1]:
                g_weight = _class_index_weight_grad(ctx, log_probs, target, valid,
                                                    per_item, loss, grad)
        return g_scores, g_weight, None, None, None, None, None


def _per_class(smoothing, n_classes):
    """``smoothing / n_classes``, the share of each class in label smoothing; inf when
    there is no class (PyTorch's float division: the empty loss is then NaN)."""
    return smoothing / n_classes if n_classes else math.inf


class _LogProbabilities:
    """log p of every class, either given or as log_softmax of logits (computed lazily).

    For logits ``z`` it keeps only ``e = exp(z - max z)``, its row sums and
    ``logsumexp(z)``: then ``logp = z - logsumexp(z)`` and ``softmax = e / sum e``
    cost no second exp and no second full-size buffer.
    """

    def __init__(self, scores, from_logits):
        self.scores, self.from_logits = scores, from_logits
        self.shape, self.dtype = scores.shape, scores.dtype
        if from_logits:
            reduced = scores.shape[:1] + (1,) + scores.shape[2:]
            # Filled as for no class at all (log_z = -inf), which _by_blocks skips.
            peak, self.norm = np.full(reduced, -np.inf, self.dtype), np.zeros(reduced,
                                                                               self.dtype)
            self.exp = np.empty_like(scores)
            _by_blocks(_exp_rows, self.exp, peak, self.norm, scores)
            with np.errstate(divide="ignore", invalid="ignore"):  # as PyTorch: -inf, NaN
                self.log_z = peak + np.log(self.norm)

    def at(self, target):
        """logp[i, target_i] for every item, shape of ``target`` (zeros when there is
        no class: every item is then ignored)."""
        if self.shape[1] == 0:
            return np.zeros(target.shape, self.dtype)
        picked = np.take_along_axis(self.scores, target[:, None], axis=1)[:, 0]
        return picked - self.log_z[:, 0] if self.from_logits else picked

    def weighted_sum(self, class_weight):
        """sum_c weight_c logp[i, c] for every item."""
        total = (self.scores * _class_axis(class_weight, len(self.shape))).sum(axis=1)
        return total - self.log_z[:, 0] * class_weight.sum() if self.from_logits else total

    def full(self):
        """logp itself, of the scores' shape."""
        return self.scores - self.log_z if self.from_logits else self.scores

    def pull_back(self, row_sums):
        """Gradient w.r.t. the scores of the part of d loss/d logp that is not sparse.

        For logits, log_softmax's backward ``g - softmax * sum_c g`` applied to the
        row sums of ``g``: ``-softmax * row_sums``; for log-probabilities, zeros.
        """
        if not self.from_logits:
            return np.zeros(self.shape, self.dtype)
        out = np.empty_like(self.exp)
        _by_blocks(np.multiply, self.exp, -row_sums[:, None] / self.norm, out)
        return out


def _add_at_target(array, target, values):
    """array[i, target_i] += values_i for every item (nothing when there is no class)."""
    if array.shape[1] == 0:
        return
    index = target[:, None]
    current = np.take_along_axis(array, index, axis=1)
    np.put_along_axis(array, index, current + values[:, None], axis=1)


def _class_axis(per_class, ndim):
    """Shape a (C,) vector to broadcast along axis 1 of an ndim-dimensional array."""
    return per_class.reshape((1, -1) + (1,) * (ndim - 2))


def _class_index_weight_grad(ctx, log_probs, target, valid, per_item, loss, grad):
    """Gradient of :class:`_ClassIndexLoss` with respect to the class weights."""
    n_classes, eps = log_probs.shape[1], ctx.smoothing
    contrib = np.zeros(n_classes, log_probs.dtype)
    picked = log_probs.at(target)
    np.add.at(contrib, target[valid], (-(1 - eps) * per_item * picked)[valid])
    if eps > 0:  # ignored rows left out (their log-probabilities may be -inf or NaN)
        smoothed = np.where(valid[:, None], -_per_class(eps, n_classes) * per_item[:, None]
                            * log_probs.full(), np.zeros((), log_probs.dtype))
        contrib += smoothed.sum(axis=tuple(a for a in range(len(log_probs.shape)) if a != 1))
    if ctx.reduction == "mean":
        # d(total / D)/d weight_c also moves the denominator D = sum_i w_i
        # (nan when D = 0, like the loss itself).
        counts = np.bincount(target[valid].ravel(), minlength=n_classes)
        contrib -= grad * loss.sum() / ctx.denominator ** 2 * counts
    return contrib.astype(log_probs.dtype, copy=False)


class _ClassProbabilityLoss(Function):
    """Cross-entropy against class probabilities ``q`` (same shape as ``logp``):

        loss_i = -sum_c weight_c q'_ic logp_ic,   q' = (1 - eps) q + eps / C

    'mean' divides by the number of items, computed as PyTorch does: ``logp.size / C``
    (NaN for an empty batch or no class). A zero probability on a class of
    log-probability -inf gives NaN (0 * -inf), as in PyTorch, without a warning.
    """

    @staticmethod
    def forward(ctx, logp, target, weight, reduction, smoothing):
        n_classes = logp.shape[1]
        smoothed = target * (1 - smoothing) + _per_class(smoothing, n_classes)
        spread = 1 if weight is None else _class_axis(weight, logp.ndim)
        ctx.save_for_backward(logp, smoothed, spread)
        ctx.reduction, ctx.smoothing = reduction, smoothing
        ctx.count = logp.size / n_classes if n_classes else math.nan
        with np.errstate(invalid="ignore", over="ignore"):
            terms = -(logp * smoothed * spread)
            if reduction == "none":
                return terms.sum(axis=1)
            total = terms.sum()
            return np.asarray(total / ctx.count if reduction == "mean" else total,
                              dtype=logp.dtype)

    @staticmethod
    def backward(ctx, grad):
        logp, smoothed, spread = ctx.saved
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            g = grad / ctx.count if ctx.reduction == "mean" else grad
            g = np.expand_dims(g, 1) if ctx.reduction == "none" else g
            g_logp = -g * smoothed * spread
            g_target = -g * (1 - ctx.smoothing) * logp * spread \
                if ctx.needs_input_grad[1] else None
            g_weight = None
            if ctx.needs_input_grad[2]:
                per_class = -g * smoothed * logp
                g_weight = per_class.sum(axis=tuple(a for a in range(logp.ndim) if a != 1))
        return g_logp, g_target, g_weight, None, None


def _check_loss_arguments(op, input, target, weight, ignore_index, reduction,
                          label_smoothing=0.0):
    """Validate the shared arguments of nll_loss and cross_entropy.

    Returns
    -------
    probabilities : bool
        True when ``target`` holds class probabilities rather than indices.
    """
    check_float_array(op, "input", input)
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dimension (the classes), "
                         f"got a 0-d array")
    check_array(op, "target", target)
    check_int(op, "ignore_index", ignore_index)
    check_choice(op, "reduction", reduction, REDUCTIONS)
    check_real(op, "label_smoothing", label_smoothing, 0.0, 1.0)
    n_classes = input.shape[0 if input.ndim == 1 else 1]
    if weight is not None:
        check_float_array(op, "weight", weight, ndim=1)
        if weight.shape[0] != n_classes:
            raise ValueError(f"{op}: weight must have one entry per class ({n_classes}), "
                             f"got shape {weight.shape}")
    check_same_dtype(op, input=input, weight=weight)
    if np.issubdtype(target.dtype, np.floating):
        if target.shape != input.shape:
            raise ValueError(f"{op}: a float target holds class probabilities and must "
                             f"have input's shape {input.shape}, got {target.shape}")
        check_same_dtype(op, input=input, target=target)
        return True
    check_array(op, "target", target, dtype_kind="int")
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{op}: target of class indices must have shape {expected} "
                         f"for input of shape {input.shape}, got {target.shape}")
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if np.any(bad):
        first = np.asarray(target)[bad].flat[0]
        raise ValueError(f"{op}: target has class index {first}, outside [0, {n_classes}) "
                         f"(and not ignore_index={ignore_index})")
    return False


def _batched(input, target):
    """View unbatched input (C,) and target () as a batch of one."""
    from .elementwise import reshape
    if input.ndim == 1:
        target = target.reshape((1,) + target.shape)
        return reshape(input, (1, input.shape[0])), target, True
    return input, target, False


def _unbatched(loss, was_unbatched, reduction):
    from .elementwise import reshape
    if was_unbatched and reduction == "none":
        return reshape(loss, ())
    return loss


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices, like ``torch.nn.functional.nll_loss``.

    Parameters
    ----------
    input : ndarray of shape (C,), (N, C) or (N, C, d1, ...), float
        Log-probabilities.
    target : int ndarray of shape (), (N,) or (N, d1, ...)
        Class indices in ``[0, C)`` or ``ignore_index``.
    weight : ndarray of shape (C,), optional
        Per-class weights.
    ignore_index : int
        Target value that contributes neither loss nor gradient nor weight.
    reduction : {'mean', 'sum', 'none'}
        'mean' is the weighted mean ``sum_i w_i l_i / sum_i w_i``.

    Returns
    -------
    ndarray
        A scalar (0-d array), or the per-item losses of ``target``'s shape for 'none'.
    """
    if _check_loss_arguments("nll_loss", input, target, weight, ignore_index, reduction):
        raise TypeError("nll_loss: target must hold integer class indices, got dtype "
                        f"{target.dtype}")
    logp, target, was_unbatched = _batched(input, target)
    loss = _ClassIndexLoss.apply(logp, weight, target, ignore_index, reduction, 0.0, False)
    return _unbatched(loss, was_unbatched, reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits, like ``torch.nn.functional.cross_entropy``.

    It is ``nll_loss(log_softmax(input, 1), target)`` for class indices, and
    ``-sum_c target_c log_softmax(input)_c`` for class probabilities; its gradient
    with respect to the logits is ``softmax(input) - one_hot(target)`` (divided by N
    for the mean), the result derived in the book's softmax chapter.

    Parameters
    ----------
    input : ndarray of shape (C,), (N, C) or (N, C, d1, ...), float
        Unnormalized logits.
    target : ndarray
        Class indices (integer dtype) of shape (), (N,) or (N, d1, ...), or class
        probabilities (input's float dtype) of input's shape.
    weight : ndarray of shape (C,), optional
        Per-class weights.
    ignore_index : int
        Only for class indices: a target value that is skipped.
    reduction : {'mean', 'sum', 'none'}
    label_smoothing : float in [0, 1]
        Mixes the target with the uniform distribution: ``(1 - eps) t + eps / C``.

    Returns
    -------
    ndarray
        A scalar (0-d array), or per-item losses for 'none'.

    Examples
    --------
    >>> import numpy as np, fancydl
    >>> z = np.array([[2.0, 0.0, 0.0]])
    >>> round(float(fancydl.cross_entropy(z, np.array([0]))), 6)
    0.239545
    """
    probabilities = _check_loss_arguments("cross_entropy", input, target, weight,
                                          ignore_index, reduction, label_smoothing)
    logits, target, was_unbatched = _batched(input, target)
    if probabilities:
        loss = _ClassProbabilityLoss.apply(log_softmax(logits, 1), target, weight,
                                           reduction, float(label_smoothing))
    else:
        loss = _ClassIndexLoss.apply(logits, weight, target, ignore_index, reduction,
                                     float(label_smoothing), True)
    return _unbatched(loss, was_unbatched, reduction)
