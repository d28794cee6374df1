"""Momentum (`trace`) and stochastic gradient descent."""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._scaling import scale_by_learning_rate


class TraceState(NamedTuple):
    """State of `trace`: the momentum buffer, shaped like the params."""

    trace: Updates


def trace(
    decay: float, nesterov: bool = False, *, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Heavy-ball momentum: an exponentially decaying sum of past updates.

    Update rule::

        v_t = decay * v_{t-1} + g_t
        u_t = v_t                      (nesterov=False)
        u_t = g_t + decay * v_t        (nesterov=True)

    Args:
        decay: the momentum coefficient, in [0, 1).
        nesterov: return the Nesterov look-ahead `g_t + decay * v_t` instead of `v_t`.
        accumulator_dtype: dtype of `v`; by default each leaf's own dtype.

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", USSR
        Computational Mathematics and Mathematical Physics, 1964. Sutskever, Martens, Dahl and
        Hinton, "On the importance of initialization and momentum in deep learning", ICML 2013.
    """
    fn = "trace"
    _checks.in_unit_interval(fn, "decay", decay)
    accumulator_dtype = _checks.float_dtype(fn, "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        _checks.real_floating_leaves(fn, "params", params)
        return TraceState(trace=_tree.zeros_like(params, accumulator_dtype))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn, "state.trace", state.trace, "updates", updates, hint=_checks.STATE_HINT
        )

        def leaf(g, v):
            cd = _numerics.compute_dtype(g.dtype)
            mu = _numerics.as_dtype(decay, cd)
            v_out = (mu * v.astype(cd) + g.astype(cd)).astype(v.dtype)
            v_new = v_out.astype(cd)  # the stored (rounded) buffer: the step reads the new state
            u = g.astype(cd) + mu * v_new if nesterov else v_new
            return u.astype(g.dtype), v_out

        u, v = _tree.map_unzip(leaf, 2, updates, state.trace)
        return u, TraceState(trace=v)

    return GradientTransformation(init_fn, update_fn)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Update rule (the momentum buffer accumulates learning-rate-scaled gradients)::

        v_t     = momentum * v_{t-1} + lr(t) * g_t
        theta_t = theta_{t-1} - v_t                              (nesterov=False)
        theta_t = theta_{t-1} - (lr(t) * g_t + momentum * v_t)   (nesterov=True)

    This is `chain(scale_by_learning_rate(lr), trace(momentum, nesterov))`.

    Relation to `torch.optim.SGD(momentum=...)`: PyTorch keeps `b_t = momentum * b_{t-1} + g_t`
    and steps by `lr(t) * b_t`. With a constant learning rate the two are identical
    (`v_t = lr * b_t`). When the learning rate changes, they differ: here each gradient keeps
    the learning rate of the step it arrived at, while PyTorch rescales the whole buffer by the
    current learning rate (so a learning-rate drop also shrinks the accumulated momentum at
    once). For PyTorch's behaviour use
    `chain(trace(momentum, nesterov), scale_by_learning_rate(lr))`.

    Args:
        learning_rate: a constant or a schedule of the step count.
        momentum: the momentum coefficient in [0, 1), or None for plain SGD (no state).
        nesterov: use Nesterov momentum (needs `momentum`).
        accumulator_dtype: dtype of the momentum buffer.

    References:
        Robbins and Monro, "A Stochastic Approximation Method", Annals of Mathematical
        Statistics, 1951. Sutskever, Martens, Dahl and Hinton, "On the importance of
        initialization and momentum in deep learning", ICML 2013.
    """
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: `nesterov=True` needs a `momentum`, e.g. momentum=0.9.")
        return scale_by_learning_rate(learning_rate)
    return chain(
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov, accumulator_dtype=accumulator_dtype),
    )
