"""A line search for the strong Wolfe conditions (bracketing and zoom), for use after L-BFGS."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformationExtraArgs, Updates

_BRACKET, _ZOOM, _DONE = 0, 1, 2


class ScaleByZoomLinesearchState(NamedTuple):
    """State of `scale_by_zoom_linesearch`, describing the last step it chose.

    `value` and `grad` are the loss and its gradient at the point the step leads to (at the
    current params if no step was taken), so the next iteration can reuse them instead of
    evaluating the loss again (up to the rounding of `apply_updates`).
    """

    learning_rate: chex.Array
    value: chex.Array
    grad: Updates
    num_linesearch_steps: chex.Array
    success: chex.Array


def real_leaves(fn: str, tree: Any) -> None:
    """Raises unless every leaf of the params `tree` is a real floating-point array."""
    _checks.floating_leaves(fn, "params", tree)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.iscomplexobj(leaf):
            raise TypeError(
                f"{fn}: params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; this "
                f"transformation needs real parameters (optimize the real and imaginary parts "
                f"as separate real leaves)."
            )


def _cubic_minimizer(lo, f_lo, df_lo, hi, f_hi, df_hi):
    """Minimiser of the cubic through two points with slopes (Nocedal and Wright, eq. 3.59),
    kept in the middle 80% of the interval; the midpoint where it is not defined."""
    d1 = df_lo + df_hi - 3 * (f_lo - f_hi) / (lo - hi)
    radicand = d1 * d1 - df_lo * df_hi
    d2 = jnp.sign(hi - lo) * jnp.sqrt(jnp.maximum(radicand, 0))
    trial = hi - (hi - lo) * (df_hi + d2 - d1) / (df_hi - df_lo + 2 * d2)
    width = jnp.abs(hi - lo)
    left = jnp.minimum(lo, hi) + 0.1 * width
    right = jnp.maximum(lo, hi) - 0.1 * width
    ok = (radicand >= 0) & jnp.isfinite(trial) & (trial >= left) & (trial <= right)
    return jnp.where(ok, trial, (lo + hi) / 2)


def _missing_args_error(fn: str, missing: list[str]) -> ValueError:
    names = ", ".join(f"`{m}`" for m in missing)
    return ValueError(
        f"{fn}: `update` needs the keyword arguments `value`, `grad` and `value_fn` (missing: "
        f"{names}). Call `update(updates, state, params, value=loss, grad=grad, "
        f"value_fn=loss_fn)`, where `loss, grad = jax.value_and_grad(loss_fn)(params)` and "
        f"`loss_fn` maps the params to a scalar."
    )


def scale_by_zoom_linesearch(
    max_linesearch_steps: int = 20,
    max_learning_rate: float | None = None,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
) -> GradientTransformationExtraArgs:
    """Scales a descent direction by a step that satisfies the strong Wolfe conditions.

    With `d` the incoming updates (a direction to add to the params), `f(eta)` the loss at
    `params + eta * d` and `f'(eta)` its slope along `d`, the step `eta` satisfies::

        f(eta) <= f(0) + slope_rtol * eta * f'(0)       (sufficient decrease, Armijo)
        |f'(eta)| <= curv_rtol * |f'(0)|                (curvature)
        u_t = eta * d

    The search tries `eta = 1` (capped at `max_learning_rate`) and multiplies it by
    `increase_factor` while the loss keeps decreasing along a descending slope, until an
    interval known to contain an acceptable step is found (Nocedal and Wright, Algorithm 3.5);
    it then shrinks the interval (Algorithm 3.6, "zoom"), trying the minimiser of the cubic
    fitted to the values and slopes at its ends, or the midpoint when that minimiser falls
    outside the middle 80% of the interval. Each trial costs one evaluation of the loss and its
    gradient. After `max_linesearch_steps` trials without an acceptable step, the trial with
    the lowest loss among those satisfying the Armijo condition is used (0 if there is none);
    `state.success` is then False. If `d` is not a descent direction (`f'(0) >= 0`), the
    search runs along `-grad` instead.

    `update` takes the keyword arguments `value` (the loss at `params`), `grad` (its gradient)
    and `value_fn` (the loss as a function of the params), as well as `params`. The search is
    a `lax.while_loop`, so the step jits.

    Args:
        max_linesearch_steps: the most evaluations of the loss per step, an integer > 0.
        max_learning_rate: the largest step tried, > 0; by default unbounded.
        increase_factor: the factor by which the trial step grows while bracketing, > 1.
        slope_rtol: the Armijo constant `c1`, in (0, curv_rtol).
        curv_rtol: the curvature constant `c2`, in (slope_rtol, 1); 0.9 suits quasi-Newton
            directions.

    References:
        Nocedal and Wright, "Numerical Optimization", 2nd edition, Springer, 2006,
        Algorithms 3.5 and 3.6.
    """
    fn = "scale_by_zoom_linesearch"
    _checks.positive_int(fn, "max_linesearch_steps", max_linesearch_steps)
    if max_learning_rate is not None:
        _checks.positive(fn, "max_learning_rate", max_learning_rate)
    factor = _checks.finite(fn, "increase_factor", increase_factor)
    if factor is not None and factor <= 1:
        raise ValueError(f"{fn}: `increase_factor` must be > 1, got {increase_factor!r}.")
    c1 = _checks.finite(fn, "slope_rtol", slope_rtol)
    c2 = _checks.finite(fn, "curv_rtol", curv_rtol)
    if c1 is not None and c2 is not None and not 0 < c1 < c2 < 1:
        raise ValueError(
            f"{fn}: the Wolfe constants must satisfy 0 < `slope_rtol` < `curv_rtol` < 1, got "
            f"slope_rtol={slope_rtol!r} and curv_rtol={curv_rtol!r}."
        )

    def init_fn(params):
        real_leaves(fn, params)
        acc = _tree.scalar_dtype(params)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.zeros([], acc),
            value=jnp.full([], jnp.inf, acc),
            grad=_tree.zeros_like(params),
            num_linesearch_steps=_numerics.zero_count(),
            success=jnp.zeros([], bool),
        )

    def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        del extra
        given = {"value": value, "grad": grad, "value_fn": value_fn}
        missing = [name for name, arg in given.items() if arg is None]
        if missing:
            raise _missing_args_error(fn, missing)
        if not callable(value_fn):
            raise TypeError(f"{fn}: `value_fn` must be a function of the params, got {value_fn!r}.")
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        _checks.trees_match(fn, "params", params, "grad", grad)
        _checks.trees_match(fn, "state.grad", state.grad, "params", params, hint=_checks.STATE_HINT)
        if jnp.shape(value) != ():
            raise ValueError(f"{fn}: `value` must be a scalar, got shape {jnp.shape(value)}.")
        acc = state.value.dtype
        f0 = jnp.asarray(value).astype(acc)
        widen = lambda tree: jax.tree.map(_numerics.widen, tree)
        d = widen(updates)
        slope = _tree.vdot(grad, d).astype(acc)
        descent = slope < 0
        d = jax.tree.map(lambda u, g: jnp.where(descent, u, -_numerics.widen(g)), d, grad)
        df0 = jnp.where(descent, slope, -_tree.vdot(grad, grad).astype(acc))
        grad0 = jax.tree.map(lambda g, p: g.astype(p.dtype), grad, params)
        k1, k2 = jnp.asarray(slope_rtol, acc), jnp.asarray(curv_rtol, acc)
        a_max = jnp.asarray(jnp.inf if max_learning_rate is None else max_learning_rate, acc)
        grow = jnp.asarray(increase_factor, acc)
        value_and_grad = jax.value_and_grad(value_fn)

        def evaluate(a):
            x = jax.tree.map(
                lambda p, u: (p.astype(u.dtype) + a.astype(u.dtype) * u).astype(p.dtype), params, d
            )
            f, g = value_and_grad(x)
            return jnp.asarray(f).astype(acc), g, _tree.vdot(g, d).astype(acc)

        def body(c):
            a = c["a"]
            f, g, df = evaluate(a)
            armijo = f <= f0 + k1 * a * df0
            curv = jnp.abs(df) <= k2 * jnp.abs(df0)
            # Bracketing (Algorithm 3.5): is there an acceptable step in (a_prev, a)?
            up = ~armijo | ((c["it"] > 0) & (f >= c["f_prev"]))
            b_done = ~up & curv
            turn = ~up & ~curv & (df >= 0)
            extend = ~up & ~curv & (df < 0)
            # Zoom (Algorithm 3.6): shrink (lo, hi) around an acceptable step.
            z_hi = ~armijo | (f >= c["f_lo"])
            z_done = ~z_hi & curv
            z_swap = ~z_hi & ~curv & (df * (c["hi"] - c["lo"]) >= 0)
            zoom = c["stage"] == _ZOOM
            done = jnp.where(zoom, z_done, b_done)
            trial = (a, f, df)
            prev = (c["a_prev"], c["f_prev"], c["df_prev"])
            lo = (c["lo"], c["f_lo"], c["df_lo"])
            hi = (c["hi"], c["f_hi"], c["df_hi"])
            pick = lambda cond, x, y: tuple(
                jnp.where(cond, p, q) for p, q in zip(x, y, strict=True)
            )
            new_lo = pick(zoom, pick(z_hi, lo, trial), pick(turn, trial, prev))
            new_hi = pick(zoom, pick(z_hi, trial, pick(z_swap, lo, hi)), pick(turn, prev, trial))
            a_next = jnp.minimum(grow * a, a_max)
            at_cap = extend & (a_next <= a)  # cannot grow further: keep a (Armijo holds there)
            stage = jnp.where(
                done | (~zoom & at_cap),
                _DONE,
                jnp.where(zoom | up | turn, _ZOOM, _BRACKET),
            )
            width = jnp.abs(new_hi[0] - new_lo[0])
            tiny = width <= jnp.finfo(acc).eps * jnp.maximum(new_lo[0], new_hi[0])
            stage = jnp.where((stage == _ZOOM) & tiny, _DONE, stage)
            interp = _cubic_minimizer(*new_lo, *new_hi)
            better = (armijo & (f < c["best_f"])) | done
            return {
                "it": c["it"] + 1,
                "stage": stage.astype(jnp.int32),
                "a": jnp.where(stage == _ZOOM, interp, a_next),
                "a_prev": jnp.where(extend, a, c["a_prev"]),
                "f_prev": jnp.where(extend, f, c["f_prev"]),
                "df_prev": jnp.where(extend, df, c["df_prev"]),
                "lo": new_lo[0],
                "f_lo": new_lo[1],
                "df_lo": new_lo[2],
                "hi": new_hi[0],
                "f_hi": new_hi[1],
                "df_hi": new_hi[2],
                "best_a": jnp.where(better, a, c["best_a"]),
                "best_f": jnp.where(better, f, c["best_f"]),
                "best_g": jax.tree.map(lambda x, y: jnp.where(better, x, y), g, c["best_g"]),
                "success": done,
            }

        zero = jnp.zeros([], acc)
        carry = {
            "it": jnp.zeros([], jnp.int32),
            "stage": jnp.asarray(_BRACKET, jnp.int32),
            "a": jnp.minimum(jnp.ones([], acc), a_max),
            "a_prev": zero,
            "f_prev": f0,
            "df_prev": df0,
            "lo": zero,
            "f_lo": f0,
            "df_lo": df0,
            "hi": zero,
            "f_hi": f0,
            "df_hi": df0,
            "best_a": zero,
            "best_f": f0,
            "best_g": grad0,
            "success": jnp.zeros([], bool),
        }
        out = jax.lax.while_loop(
            lambda c: (c["stage"] != _DONE) & (c["it"] < max_linesearch_steps), body, carry
        )
        eta = out["best_a"]
        new_updates = jax.tree.map(
            lambda u, p: (eta.astype(u.dtype) * u).astype(p.dtype), d, updates
        )
        return new_updates, ScaleByZoomLinesearchState(
            learning_rate=eta,
            value=out["best_f"],
            grad=out["best_g"],
            num_linesearch_steps=out["it"],
            success=out["success"],
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)
