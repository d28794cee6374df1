"""L-BFGS: the limited-memory BFGS direction (two-loop recursion) and the L-BFGS optimizer."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, Params, ScalarOrSchedule, Updates
from ._combine import chain
from ._linesearch import real_leaves, scale_by_zoom_linesearch
from ._scaling import scale, scale_by_learning_rate


class ScaleByLBFGSState(NamedTuple):
    """State of `scale_by_lbfgs`.

    `params` and `updates` are the params and gradient of the previous step. The memory holds
    up to `memory_size` pairs `s_i = x_{i+1} - x_i`, `y_i = g_{i+1} - g_i` stacked on a leading
    axis of each leaf, as a ring buffer, with `weights_memory[i] = 1 / (s_i . y_i)` (0 for an
    empty slot). `num_pairs` counts the pairs stored so far; the next goes to slot
    `num_pairs % memory_size`.
    """

    count: chex.Array
    params: Params
    updates: Updates
    diff_params_memory: Updates
    diff_updates_memory: Updates
    weights_memory: chex.Array
    num_pairs: chex.Array


def _axpy(a, x, y):
    """`a * x + y` leaf by leaf, in each leaf's compute dtype (the scalar `a` cast to it)."""
    return jax.tree.map(lambda u, v: a.astype(v.dtype) * _numerics.widen(u) + v, x, y)


def scale_by_lbfgs(
    memory_size: int = 10, scale_init_precond: bool = True
) -> GradientTransformation:
    """Multiplies the gradient by the L-BFGS approximation of the inverse Hessian.

    Update rule (`x_t`, `g_t` the params and gradient passed to step t; the output `H_t g_t` is
    a direction to subtract, as `lbfgs` does)::

        s = x_t - x_{t-1},  y = g_t - g_{t-1}         (from step 2 on)
        store (s, y, rho = 1 / (s . y)) if s . y > eps * (y . y), dropping the oldest pair
        gamma = s_k . y_k / (y_k . y_k)   for the newest stored pair k
              = min(1, 1 / ||g_t||)        while no pair is stored
              = 1                          with scale_init_precond=False
        q = g_t
        for i = newest .. oldest:  alpha_i = rho_i s_i . q;  q = q - alpha_i y_i
        r = gamma * q
        for i = oldest .. newest:  beta_i = rho_i y_i . r;  r = r + (alpha_i - beta_i) s_i
        u_t = r

    This is the two-loop recursion of Nocedal and Wright (Algorithm 7.4) with the initial
    matrix `gamma * I` of their eq. 7.20. A pair whose curvature `s . y` is not positive
    (relative to `y . y` and the float precision `eps` of the accumulation dtype) is skipped,
    which keeps the approximation positive definite, so `u_t` is an ascent direction (Optax
    stores every pair, and a negative `s . y` can make its direction point uphill). The
    memory keeps the params' dtype; dot products are accumulated in float32 (float64 for
    float64 leaves).

    The pairs are formed from the params and gradients seen by consecutive calls, so the step
    between calls may come from anything (a line search, a fixed learning rate).

    Args:
        memory_size: the number of `(s, y)` pairs kept, an integer > 0.
        scale_init_precond: scale the initial inverse Hessian by `gamma` (and the first
            direction by `min(1, 1 / ||g||)`); with False it is the identity.

    Raises:
        ValueError: from `update`, if `params` is not given.

    References:
        Nocedal and Wright, "Numerical Optimization", 2nd edition, Springer, 2006,
        Algorithm 7.4 and eq. 7.20. Liu and Nocedal, "On the limited memory BFGS method for
        large scale optimization", Mathematical Programming 45, 1989.
    """
    fn = "scale_by_lbfgs"
    _checks.positive_int(fn, "memory_size", memory_size)
    m = memory_size

    def init_fn(params):
        real_leaves(fn, params)
        stacked = lambda: jax.tree.map(lambda p: jnp.zeros((m, *jnp.shape(p)), p.dtype), params)
        return ScaleByLBFGSState(  # distinct buffers for each field, so that they can be donated
            count=_numerics.zero_count(),
            params=_tree.zeros_like(params),
            updates=_tree.zeros_like(params),
            diff_params_memory=stacked(),
            diff_updates_memory=stacked(),
            weights_memory=jnp.zeros([m], _tree.scalar_dtype(params)),
            num_pairs=_numerics.zero_count(),
        )

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        _checks.trees_match(
            fn, "state.params", state.params, "params", params, hint=_checks.STATE_HINT
        )
        acc = state.weights_memory.dtype
        widen = lambda tree: jax.tree.map(_numerics.widen, tree)
        g = widen(updates)

        # 1. The newest pair, stored if its curvature is positive.
        s = jax.tree.map(lambda x, y: _numerics.widen(x) - _numerics.widen(y), params, state.params)
        y = jax.tree.map(lambda x, y: x - _numerics.widen(y), g, state.updates)
        sy, yy = _tree.vdot(s, y).astype(acc), _tree.vdot(y, y).astype(acc)
        store = (state.count > 0) & (sy > jnp.finfo(acc).eps * yy)
        slot = state.num_pairs % m

        def write(memory, new):
            return jnp.where(store, memory.at[slot].set(new.astype(memory.dtype)), memory)

        s_mem = jax.tree.map(write, state.diff_params_memory, s)
        y_mem = jax.tree.map(write, state.diff_updates_memory, y)
        rho_mem = write(state.weights_memory, 1 / jnp.where(store, sy, 1))
        num_pairs = jnp.where(store, _numerics.safe_increment(state.num_pairs), state.num_pairs)

        # 2. The scale gamma of the initial inverse Hessian, from the newest stored pair.
        newest = (num_pairs - 1) % m
        at = lambda mem, i: jax.tree.map(lambda x: _numerics.widen(x[i]), mem)
        if scale_init_precond:
            y_k = at(y_mem, newest)
            rho_k = rho_mem[newest]
            # s_k . y_k / (y_k . y_k) = 1 / (rho_k * y_k . y_k)
            gamma_pairs = 1 / (rho_k * _tree.vdot(y_k, y_k).astype(acc))
            gamma_first = jnp.minimum(1, 1 / _tree.global_norm(g).astype(acc))
            gamma = jnp.where(num_pairs > 0, gamma_pairs, gamma_first)
        else:
            gamma = jnp.ones([], acc)

        # 3. The two-loop recursion over the ring buffer, newest pair first (empty slots have
        #    rho = 0 and change nothing).
        order = (newest - jnp.arange(m, dtype=num_pairs.dtype)) % m

        def backward(q, i):
            alpha = rho_mem[i] * _tree.vdot(at(s_mem, i), q).astype(acc)
            return _axpy(-alpha, at(y_mem, i), q), alpha

        q, alphas = jax.lax.scan(backward, g, order)
        r = jax.tree.map(lambda x: gamma.astype(x.dtype) * x, q)

        def forward(r, i_alpha):
            i, alpha = i_alpha
            beta = rho_mem[i] * _tree.vdot(at(y_mem, i), r).astype(acc)
            return _axpy(alpha - beta, at(s_mem, i), r), None

        r, _ = jax.lax.scan(forward, r, (order[::-1], alphas[::-1]))
        direction = jax.tree.map(lambda x, u: x.astype(u.dtype), r, updates)
        return direction, ScaleByLBFGSState(
            count=_numerics.safe_increment(state.count),
            params=jax.tree.map(lambda p, old: p.astype(old.dtype), params, state.params),
            updates=jax.tree.map(lambda u, old: u.astype(old.dtype), updates, state.updates),
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=rho_mem,
            num_pairs=num_pairs,
        )

    return GradientTransformation(init_fn, update_fn)


_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(max_linesearch_steps=20)


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = _DEFAULT_LINESEARCH,
) -> GradientTransformation:
    """L-BFGS: `chain(scale_by_lbfgs(...), scale(-1) or scale_by_learning_rate(lr), linesearch)`.

    Update rule (see `scale_by_lbfgs` for the direction `H_t g_t` and
    `scale_by_zoom_linesearch` for the step `eta_t`)::

        theta_t = theta_{t-1} - eta_t * lr(t) * H_t g_t      (lr = 1 when learning_rate is None)

    By default `eta_t` is found by a line search for the strong Wolfe conditions, whose `update`
    needs the loss::

        opt = gradtx.lbfgs()
        state = opt.init(params)
        value, grad = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=loss_fn)
        params = gradtx.apply_updates(params, updates)

    With `linesearch=None`, `eta_t = 1` and `update` needs only the gradient and params.

    Relation to `torch.optim.LBFGS`: with `line_search_fn=None` and `max_iter=1` (one
    iteration per `step`), PyTorch takes the same steps except the first, which it scales by
    `min(1, 1 / ||g||_1)` where this scales by `min(1, 1 / ||g||_2)`; it also stores a pair
    when `s . y > 1e-10` rather than with the relative test above. Its strong-Wolfe search
    differs in details (first trial, extrapolation, stopping rules), so those trajectories
    differ step by step while both converge.

    Args:
        learning_rate: a constant or schedule multiplying the direction before the line
            search; None for 1.
        memory_size, scale_init_precond: see `scale_by_lbfgs`.
        linesearch: a transformation choosing the step along the direction (it receives the
            negated direction), or None for no line search.

    References:
        Liu and Nocedal, "On the limited memory BFGS method for large scale optimization",
        Mathematical Programming 45, 1989. Nocedal and Wright, "Numerical Optimization", 2nd
        edition, Springer, 2006, Algorithms 7.4, 7.5, 3.5 and 3.6.
    """
    if linesearch is not None:
        _checks.transformation("lbfgs", "linesearch", linesearch)
    members = [
        scale_by_lbfgs(memory_size, scale_init_precond),
        scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate),
    ]
    if linesearch is not None:
        members.append(linesearch)
    return chain(*members)
