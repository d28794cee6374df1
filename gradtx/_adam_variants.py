"""Adam variants: AMSGrad, NAdam/NAdamW (Adam's Nesterov form) and Rectified Adam."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._adam import adam, adamw
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn
from ._scaling import scale_by_learning_rate


class ScaleByAmsgradState(NamedTuple):
    """State of `scale_by_amsgrad`: step count, Adam's two moments and the running maximum."""

    count: chex.Array
    mu: Updates
    nu: Updates
    nu_max: Updates


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    correct_after_max: bool = False,
) -> GradientTransformation:
    """Adam whose second moment never decreases: it divides by the running maximum.

    Update rule (t = 1, 2, ...; `bc1_t = 1 - b1^t`, `bc2_t = 1 - b2^t`)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * g_t^2
        m^  = m_t / bc1_t                       (m_t with bias_correction_mu=False)
        default (Optax):          vmax_t = max(vmax_{t-1}, v_t / bc2_t);   v^ = vmax_t
        correct_after_max=True:   vmax_t = max(vmax_{t-1}, v_t);   v^ = vmax_t / bc2_t
        bias_correction_nu=False: vmax_t = max(vmax_{t-1}, v_t);   v^ = vmax_t
        u_t = m^ / (sqrt(v^ + eps_root) + eps)

    The three forms place the bias correction of `v` differently. The paper (Algorithm 2)
    has none (`bias_correction_mu=False, bias_correction_nu=False`). Optax (the default here)
    takes the maximum of the bias-corrected `v_t / bc2_t`, so `v^` never decreases, the
    property the paper's analysis rests on. `torch.optim.Adam(amsgrad=True)` takes the
    maximum of the raw `v_t` and divides it by the current `bc2_t` afterwards
    (`correct_after_max=True`); its `v^` can decrease while `bc2_t` grows. The forms differ
    only when `v` shrinks within the first ~`1 / (1 - b2)` steps.

    Args:
        b1, b2, eps, eps_root, mu_dtype: as in `scale_by_adam`.
        bias_correction_mu: divide the first moment by `1 - b1^t`.
        bias_correction_nu: correct the second moment by `1 - b2^t` (before the maximum,
            unless `correct_after_max`).
        correct_after_max: take the maximum of the uncorrected `v_t` and correct it afterwards,
            as PyTorch does (needs `bias_correction_nu`).

    References:
        Reddi, Kale and Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
        arXiv:1904.09237
    """
    fn = "scale_by_amsgrad"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)
    mu_dtype = _checks.float_dtype(fn, "mu_dtype", mu_dtype)
    if correct_after_max and not bias_correction_nu:
        raise ValueError(
            f"{fn}: `correct_after_max=True` corrects the second moment after the maximum, "
            f"but `bias_correction_nu=False` turns that correction off. Set one of them."
        )

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByAmsgradState(
            count=_numerics.zero_count(),
            mu=_tree.zeros_like(params, mu_dtype),
            nu=_tree.zeros_like(params),
            nu_max=_tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v, v_max):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            m_new = _numerics.ema(b1, m, gw, cd)
            v_new = _numerics.ema(b2, v, _numerics.abs_sq(gw), cd)
            bc2 = _tree.bias_correction(b2, count, cd)
            if bias_correction_nu and not correct_after_max:
                v_max_new = jnp.maximum(v_max.astype(cd), v_new / bc2)
                v_hat = v_max_new
            else:
                v_max_new = jnp.maximum(v_max.astype(cd), v_new)
                v_hat = v_max_new / bc2 if correct_after_max else v_max_new
            m_hat = m_new / _tree.bias_correction(b1, count, cd) if bias_correction_mu else m_new
            eps_c, eps_root_c = _numerics.as_dtype(eps, cd), _numerics.as_dtype(eps_root, cd)
            u = m_hat / (jnp.sqrt(v_hat + eps_root_c) + eps_c)
            return (
                u.astype(g.dtype),
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                v_max_new.astype(v_max.dtype),
            )

        u, mu, nu, nu_max = _tree.map_unzip(leaf, 4, updates, state.mu, state.nu, state.nu_max)
        return u, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return GradientTransformation(init_fn, update_fn)


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    correct_after_max: bool = False,
) -> GradientTransformation:
    """AMSGrad: `chain(scale_by_amsgrad(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_amsgrad` for `u_t` and its three bias-correction forms)::

        theta_t = theta_{t-1} - lr(t) * u_t

    `amsgrad(lr, b1, b2, eps, correct_after_max=True)` equals
    `torch.optim.Adam(lr, betas=(b1, b2), eps=eps, amsgrad=True)`; PyTorch's `weight_decay` is
    an L2 term, `chain(add_decayed_weights(weight_decay), amsgrad(...))`, and `maximize=True`
    is amsgrad of `-g`. The default form is Optax's.

    References:
        Reddi, Kale and Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
        arXiv:1904.09237
    """
    options = {
        "mu_dtype": mu_dtype,
        "bias_correction_mu": bias_correction_mu,
        "bias_correction_nu": bias_correction_nu,
        "correct_after_max": correct_after_max,
    }
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, **options), scale_by_learning_rate(learning_rate)
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NAdam: Adam with a Nesterov look-ahead first moment, `adam(..., nesterov=True)`.

    Update rule (t = 1, 2, ...; the rest of `scale_by_adam`)::

        m^      = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)
        theta_t = theta_{t-1} - lr(t) * m^ / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)

    This is Optax's `nadam` (Dozat's rule with a constant momentum `b1`).

    Relation to `torch.optim.NAdam(lr, betas, eps, momentum_decay)`: PyTorch uses Dozat's
    momentum schedule `mu_t = b1 * (1 - 0.5 * 0.96^(t * momentum_decay))` and steps by
    `lr * [(1 - mu_t) / (1 - prod_{i<=t} mu_i) * g_t + mu_{t+1} / (1 - prod_{i<=t+1} mu_i)
    * m_t] / (sqrt(v^) + eps)`. With a constant `mu_t = b1` that is exactly the rule above.
    `momentum_decay=0` does not give it (then `mu_t = b1 / 2` while `m_t` still decays with
    `b1`); a `momentum_decay` so large that `0.96^momentum_decay` underflows to 0 does (e.g.
    1e6). PyTorch's default `momentum_decay=4e-3` makes `mu_t` grow from `0.45` to `0.9`
    over thousands of steps (`mu_t = 0.9 * (1 - 0.5 * 0.96^(t / 250))`), a different
    optimizer early in training. Its `weight_decay` is an L2 term, `chain(
    add_decayed_weights(weight_decay), nadam(...))`; `decoupled_weight_decay=True` is `nadamw`.

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=True)


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    *,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NAdamW: NAdam with decoupled weight decay, `adamw(..., nesterov=True)`.

    Update rule (`m^` as in `nadam`)::

        theta_t = theta_{t-1} - lr(t) * (m^ / (sqrt(v^ + eps_root) + eps) + weight_decay
                  * theta_{t-1})

    Equals `torch.optim.NAdam(lr, betas, eps, weight_decay, momentum_decay=1e6,
    decoupled_weight_decay=True)` (see `nadam` on `momentum_decay`). The default
    `weight_decay=1e-4` is Optax's; PyTorch's is 0.

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop. Loshchilov and
        Hutter, "Decoupled Weight Decay Regularization", ICLR 2019. arXiv:1711.05101
    """
    args = (learning_rate, b1, b2, eps, eps_root, weight_decay)
    return adamw(*args, mask=mask, mu_dtype=mu_dtype, nesterov=True)


class ScaleByRadamState(NamedTuple):
    """State of `scale_by_radam`: step count and Adam's two moments."""

    count: chex.Array
    mu: Updates
    nu: Updates


def _rho_constants(b2):
    """`(log(1/b2), 2 / log(1/b2), 2/(1-b2) - 2/log(1/b2) - 1, rho_inf)` for the rho_t formula.

    Computed in float64 on the host when `b2` is a number (the difference in the third
    cancels two terms of size `2 / (1 - b2)`); with a traced `b2`, in its dtype.
    """
    if isinstance(b2, int | float):
        u = 1.0 - b2
        log_inv = -math.log1p(-u) if u < 1 else math.inf
        two_over_log = 2.0 / log_inv
        return log_inv, two_over_log, 2.0 / u - two_over_log - 1.0, 2.0 / u - 1.0
    u = 1 - jnp.asarray(b2)
    log_inv = -jnp.log1p(-u)
    return log_inv, 2 / log_inv, 2 / u - 2 / log_inv - 1, 2 / u - 1


def _radam_rho(count: chex.Array, b2, dtype) -> tuple[chex.Array, chex.Array]:
    """`rho_t = rho_inf - 2 t b2^t / (1 - b2^t)` and `rho_inf` as scalars of `dtype`.

    Evaluated directly, `rho_t` loses ~0.01 in float32 for b2 = 0.999 (two terms of ~2000
    cancel to ~t), which moves the rectifier r_t by 0.2% at t = 6. With `x = t log(1/b2)`,
    `rho_t = A + (2 / log(1/b2)) * q(x)` where `q(x) = 1 - x / (e^x - 1)` and
    `A = 2 / (1 - b2) - 2 / log(1/b2) - 1`: `A` comes from the host in float64, and `q` from
    its Taylor series for small `x` (`x/2 - x^2/12 + x^4/720 - x^6/30240 + x^8/1209600`,
    truncation < 1e-10 relative for x < 0.5), so `rho_t` is accurate to a few ulps of `t`.
    """
    log_inv, two_over_log, offset, rho_inf = (
        _numerics.as_dtype(c, dtype) for c in _rho_constants(b2)
    )
    x = count.astype(dtype) * log_inv
    xs = jnp.minimum(x, 0.5)
    x2 = xs * xs
    series = xs / 2 - x2 * (1 / 12 - x2 * (1 / 720 - x2 * (1 / 30240 - x2 / 1209600)))
    xd = jnp.clip(x, 0.5, 100.0)  # q(100) = 1 - 4e-42 rounds to 1; avoids inf / inf
    direct = 1 - xd / jnp.expm1(xd)
    q = jnp.where(x < 0.5, series, direct)
    return offset + two_over_log * q, rho_inf


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Rectified Adam: momentum SGD until the variance of Adam's step size is tractable.

    Update rule (t = 1, 2, ...; `m^`, `v^` Adam's bias-corrected moments, `m^` in its NAdam
    form with `nesterov=True`)::

        rho_inf = 2 / (1 - b2) - 1
        rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
        r_t     = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        u_t     = r_t * m^ / (sqrt(v^ + eps_root) + eps)      if rho_t > threshold
        u_t     = m^                                          otherwise

    `rho_t` grows from 1 at t = 1 towards `rho_inf`; with b2 = 0.999 the rectified step starts
    at t = 6. `rho_t` is evaluated without the cancellation of the formula above (see
    `_radam_rho`), to a few float32 ulps; the direct formula is off by up to 0.013 for
    b2 = 0.999 in float32.

    Differences from `torch.optim.RAdam(lr, betas, eps)`: PyTorch divides by
    `(sqrt(v_t) + eps) / sqrt(1 - b2^t)`, i.e. its `eps` acts as `eps / sqrt(1 - b2^t)`
    here; the relative difference of the steps is at most
    `(1 / sqrt(1 - b2^t) - 1) * eps / sqrt(v^)` (1.2e-4 at t = 6 for b2 = 0.999, eps = 1e-8
    and gradients of 1e-3, shrinking as t grows). gradtx keeps `scale_by_adam`'s (and
    Optax's) `sqrt(v^) + eps`, the same as `torch.optim.Adam`'s. PyTorch rectifies when
    `rho_t > 5`, as here; Optax when `rho_t >= threshold` (the same unless `rho_t` is exactly
    the threshold).

    Args:
        b1, b2, eps, eps_root: as in `scale_by_adam`.
        threshold: rectify when `rho_t > threshold`; >= 4 (the paper's bound: for
            2 < rho_t < 4, `r_t` is not real).
        nesterov: use the NAdam first moment.

    References:
        Liu, Jiang, He, Chen, Liu, Gao and Han, "On the Variance of the Adaptive Learning Rate
        and Beyond", ICLR 2020. arXiv:1908.03265
    """
    fn = "scale_by_radam"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)
    t = _checks.finite(fn, "threshold", threshold)
    if t is not None and t < 4:
        raise ValueError(f"{fn}: `threshold` must be >= 4, got {threshold!r}.")

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByRadamState(
            count=_numerics.zero_count(), mu=_tree.zeros_like(params), nu=_tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v):
            cd = _numerics.compute_dtype(g.dtype)
            c1 = _numerics.as_dtype(b1, cd)
            gw = g.astype(cd)
            m_new = _numerics.ema(b1, m, gw, cd)
            v_new = _numerics.ema(b2, v, _numerics.abs_sq(gw), cd)
            bc1 = _tree.bias_correction(b1, count, cd)
            if nesterov:
                bc1_next = _tree.bias_correction(b1, _numerics.safe_increment(count), cd)
                m_hat = c1 * m_new / bc1_next + _numerics.one_minus(b1, cd) * gw / bc1
            else:
                m_hat = m_new / bc1
            v_hat = v_new / _tree.bias_correction(b2, count, cd)
            rho, rho_inf = _radam_rho(count, b2, _numerics.real_dtype(cd))
            rectify = rho > _numerics.as_dtype(threshold, cd)
            ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
            r = jnp.sqrt(jnp.where(rectify, ratio, jnp.ones_like(ratio)))
            eps_c, eps_root_c = _numerics.as_dtype(eps, cd), _numerics.as_dtype(eps_root, cd)
            adaptive = r * m_hat / (jnp.sqrt(v_hat + eps_root_c) + eps_c)
            u = jnp.where(rectify, adaptive, m_hat)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByRadamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam: `chain(scale_by_radam(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_radam` for `u_t` and the exact differences from PyTorch)::

        theta_t = theta_{t-1} - lr(t) * u_t

    PyTorch's `weight_decay` is an L2 term, `chain(add_decayed_weights(weight_decay),
    radam(...))`; its `decoupled_weight_decay=True` is `chain(scale_by_radam(...),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr))`; `maximize=True` is radam
    of `-g`.

    References:
        Liu, Jiang, He, Chen, Liu, Gao and Han, "On the Variance of the Adaptive Learning Rate
        and Beyond", ICLR 2020. arXiv:1908.03265
    """
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )
