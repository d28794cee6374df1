"""RMSProp: plain (`scale_by_rms`) and centered (`scale_by_stddev`), with optional momentum."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._adaptive import _divide, _full_like
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._scaling import scale_by_learning_rate
from ._sgd import trace


def _denominator(second_moment: chex.Array, eps: chex.Array, eps_in_sqrt: bool) -> chex.Array:
    return jnp.sqrt(second_moment + eps) if eps_in_sqrt else jnp.sqrt(second_moment) + eps


class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms`: the moving average of squared gradients."""

    nu: Updates


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = False,
) -> GradientTransformation:
    """Divides by the root of a moving average of squared gradients (RMSProp).

    Update rule (`nu_0 = initial_scale`)::

        nu_t = decay * nu_{t-1} + (1 - decay) * g_t^2
        u_t  = g_t / (sqrt(nu_t) + eps)          (eps_in_sqrt=False, the default)
        u_t  = g_t / sqrt(nu_t + eps)            (eps_in_sqrt=True)

    The default puts `eps` outside the root, as `torch.optim.RMSprop` does; Optax's default
    is `eps_in_sqrt=True`. Where the denominator is 0 (`eps = 0` and `g = 0` so far), `u_t = 0`.

    Args:
        decay: decay of the moving average, in [0, 1).
        eps: added to the denominator, >= 0.
        initial_scale: the starting value of `nu`, >= 0.
        eps_in_sqrt: add `eps` inside the square root instead of outside it.

    References:
        Tieleman and Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average
        of its recent magnitude", COURSERA: Neural Networks for Machine Learning, 2012.
    """
    fn = "scale_by_rms"
    _checks.in_unit_interval(fn, "decay", decay)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "initial_scale", initial_scale)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByRmsState(nu=_full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.nu", state.nu, "updates", updates, hint=_checks.STATE_HINT)

        def leaf(g, v):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            v_new = _numerics.ema(decay, v, _numerics.abs_sq(gw), cd)
            u = _divide(gw, _denominator(v_new, _numerics.as_dtype(eps, cd), eps_in_sqrt))
            return u.astype(g.dtype), v_new.astype(v.dtype)

        u, nu = _tree.map_unzip(leaf, 2, updates, state.nu)
        return u, ScaleByRmsState(nu=nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByStddevState(NamedTuple):
    """State of `scale_by_stddev`: moving averages of the gradients and of their squares."""

    mu: Updates
    nu: Updates


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = False,
) -> GradientTransformation:
    """Divides by a moving estimate of the gradient's standard deviation (centered RMSProp).

    Update rule (`mu_0 = 0`, `nu_0 = initial_scale`)::

        mu_t = decay * mu_{t-1} + (1 - decay) * g_t
        nu_t = decay * nu_{t-1} + (1 - decay) * g_t^2
        s_t  = max(nu_t - mu_t^2, 0)
        u_t  = g_t / (sqrt(s_t) + eps)           (eps_in_sqrt=False, the default)
        u_t  = g_t / sqrt(s_t + eps)             (eps_in_sqrt=True)

    `nu_t - mu_t^2 >= 0` in exact arithmetic; the `max` only removes a negative round-off,
    for which `torch.optim.RMSprop(centered=True)` would return NaN. Otherwise the rule is
    PyTorch's (and Optax's `scale_by_stddev`, whose default is `eps_in_sqrt=True`).

    Args: as `scale_by_rms`.

    References:
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013.
        arXiv:1308.0850
    """
    fn = "scale_by_stddev"
    _checks.in_unit_interval(fn, "decay", decay)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "initial_scale", initial_scale)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByStddevState(mu=_tree.zeros_like(params), nu=_full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)

        def leaf(g, m, v):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            m_new = _numerics.ema(decay, m, gw, cd)
            v_new = _numerics.ema(decay, v, _numerics.abs_sq(gw), cd)
            var = jnp.maximum(v_new - _numerics.abs_sq(m_new), 0)
            u = gw / _denominator(var, _numerics.as_dtype(eps, cd), eps_in_sqrt)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByStddevState(mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = False,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """RMSProp, optionally centered and with (Nesterov) momentum.

    Update rule (`d_t` is `scale_by_rms`'s `u_t`, or `scale_by_stddev`'s with `centered=True`)::

        theta_t = theta_{t-1} - lr(t) * d_t                       (momentum=None)
        b_t     = momentum * b_{t-1} + lr(t) * d_t
        theta_t = theta_{t-1} - b_t                               (momentum, nesterov=False)
        theta_t = theta_{t-1} - (lr(t) * d_t + momentum * b_t)    (nesterov=True)

    This is `chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate(lr),
    trace(momentum, nesterov))`, as in Optax.

    Relation to `torch.optim.RMSprop(lr, alpha, eps, weight_decay, momentum, centered)`:
    `alpha` is `decay`, and `eps` is outside the root in both (Optax's default is
    `eps_in_sqrt=True`; pass it to get Optax's rule). The default `decay=0.9` is Optax's (and
    Hinton's lecture's); PyTorch's is `alpha=0.99`. PyTorch's momentum buffer holds
    `d_t`-sums without the learning rate and steps by `lr * b_t`: with a constant learning rate
    the two are identical; with a schedule, here each step keeps the learning rate it arrived
    with (see `sgd`). PyTorch has no `nesterov`; its `weight_decay` is an L2 term,
    `chain(add_decayed_weights(weight_decay), rmsprop(...))`; `maximize=True` is rmsprop of
    `-g`. For centered RMSProp, see `scale_by_stddev` on the clamp at 0.

    Args:
        learning_rate: a constant or a schedule of the step count.
        decay, eps, initial_scale, eps_in_sqrt: see `scale_by_rms`.
        centered: divide by the standard deviation (`scale_by_stddev`) instead of the root
            mean square.
        momentum: the momentum coefficient in [0, 1), or None for no momentum.
        nesterov: Nesterov momentum (needs `momentum`).

    References:
        Tieleman and Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average
        of its recent magnitude", COURSERA: Neural Networks for Machine Learning, 2012.
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013. arXiv:1308.0850
    """
    if momentum is None:
        if nesterov:
            raise ValueError("rmsprop: `nesterov=True` needs a `momentum`, e.g. momentum=0.9.")
    else:
        _checks.in_unit_interval("rmsprop", "momentum", momentum)
    scaler = scale_by_stddev if centered else scale_by_rms
    transforms = [
        scaler(decay, eps, initial_scale, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    ]
    if momentum is not None:
        transforms.append(trace(momentum, nesterov))
    return chain(*transforms)
