"""Learning-rate (and other hyperparameter) schedules: pure functions of the step count.

Every schedule maps an integer step `count` (0 for the first update) to a scalar. Values are
computed in float32 (float64 when `jax_enable_x64` is on); past its last transition a schedule
holds its final value. Pass a schedule wherever a `learning_rate` is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import chex
import jax
import jax.numpy as jnp

from . import _checks
from ._base import Schedule


def _float_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _f(x) -> chex.Array:
    return jnp.asarray(x).astype(_float_dtype())


def _remaining(count, begin: int, steps: int) -> chex.Array:
    """The fraction of a transition of `steps` steps starting at `begin` still to go, in [0, 1].

    Formed from integers as `(steps - elapsed) / steps`, so it is exactly 0 at the end (and
    carries no cancellation near it).
    """
    elapsed = jnp.clip(jnp.asarray(count) - begin, 0, steps)
    return (steps - elapsed).astype(_float_dtype()) / steps


def _lerp(count, begin: int, steps: int, start, end) -> chex.Array:
    """Linear interpolation from `start` (at `begin`) to `end` (at `begin + steps` and after).

    Both ends are exact: XLA may fold `elapsed / steps * (end - start)` into one multiplication
    by a rounded constant, so the end value is selected rather than computed.
    """
    elapsed = jnp.clip(jnp.asarray(count) - begin, 0, steps)
    value = _f(start) + (_f(end) - _f(start)) * (elapsed.astype(_float_dtype()) / steps)
    return jnp.where(elapsed >= steps, _f(end), value)


def _half_cosine(remaining: chex.Array, exponent: float) -> chex.Array:
    """`(0.5 * (1 + cos(pi * s)))^exponent` with `s = 1 - remaining`.

    Evaluated as `sin(pi/2 * remaining)^(2 * exponent)`, the same value without the
    cancellation of `1 + cos` near the end of the decay (where it would lose up to 5 digits).
    """
    return jnp.sin(jnp.pi / 2 * remaining) ** _f(2 * exponent)


def constant_schedule(value: float) -> Schedule:
    """`value` at every step."""
    _checks.finite("constant_schedule", "value", value)

    def schedule(count):
        return jnp.broadcast_to(_f(value), jnp.shape(count))

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear interpolation from `init_value` to `end_value`.

    Rule::

        s = clip(count - transition_begin, 0, transition_steps) / transition_steps
        value = init_value + (end_value - init_value) * s
    """
    fn = "linear_schedule"
    _checks.finite(fn, "init_value", init_value)
    _checks.finite(fn, "end_value", end_value)
    _checks.positive_int(fn, "transition_steps", transition_steps)
    _checks.non_negative_int(fn, "transition_begin", transition_begin)

    def schedule(count):
        return _lerp(count, transition_begin, transition_steps, init_value, end_value)

    return schedule


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """Polynomial decay from `init_value` to `end_value`.

    Rule::

        s = clip(count - transition_begin, 0, transition_steps) / transition_steps
        value = end_value + (init_value - end_value) * (1 - s)^power
    """
    fn = "polynomial_schedule"
    _checks.finite(fn, "init_value", init_value)
    _checks.finite(fn, "end_value", end_value)
    _checks.positive(fn, "power", power)
    _checks.positive_int(fn, "transition_steps", transition_steps)
    _checks.non_negative_int(fn, "transition_begin", transition_begin)

    def schedule(count):
        r = _remaining(count, transition_begin, transition_steps)
        value = _f(end_value) + (_f(init_value) - _f(end_value)) * r ** _f(power)
        return jnp.where(r > 0, value, _f(end_value))

    return schedule


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """Cosine annealing from `init_value` to `alpha * init_value` over `decay_steps` steps.

    Rule::

        s = min(count, decay_steps) / decay_steps
        value = init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * s)))^exponent + alpha)

    References:
        Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017. arXiv:1608.03983
    """
    fn = "cosine_decay_schedule"
    _checks.finite(fn, "init_value", init_value)
    _checks.positive_int(fn, "decay_steps", decay_steps)
    _checks.finite(fn, "alpha", alpha)
    _checks.positive(fn, "exponent", exponent)

    def schedule(count):
        cosine = _half_cosine(_remaining(count, 0, decay_steps), exponent)
        return _f(init_value) * ((1 - _f(alpha)) * cosine + _f(alpha))

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup from `init_value` to `peak_value`, then cosine annealing to `end_value`.

    `decay_steps` counts the whole schedule, warmup included (as in Optax): the value reaches
    `peak_value` at step `warmup_steps` and `end_value` at step `decay_steps`, and holds it after.

    Rule::

        W = warmup_steps,  D = decay_steps - warmup_steps
        count <= W:  value = init_value + (peak_value - init_value) * count / W
        otherwise:   s = min(count - W, D) / D
                     value = end_value + (peak_value - end_value) * (0.5 + 0.5 cos(pi s))^exponent

    With `init_value=0, end_value=0` this is PyTorch's "linear warmup then cosine annealing"
    `LambdaLR` recipe, step for step.

    References:
        Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017.
        arXiv:1706.02677 (warmup). Loshchilov and Hutter, "SGDR", ICLR 2017. arXiv:1608.03983
    """
    fn = "warmup_cosine_decay_schedule"
    _checks.finite(fn, "init_value", init_value)
    _checks.finite(fn, "peak_value", peak_value)
    _checks.finite(fn, "end_value", end_value)
    _checks.positive(fn, "exponent", exponent)
    _checks.non_negative_int(fn, "warmup_steps", warmup_steps)
    _checks.positive_int(fn, "decay_steps", decay_steps)
    if decay_steps < warmup_steps:
        raise ValueError(
            f"{fn}: `decay_steps` ({decay_steps}) counts the whole schedule including warmup, so "
            f"it must be >= `warmup_steps` ({warmup_steps})."
        )
    cosine_steps = max(decay_steps - warmup_steps, 1)

    def schedule(count):
        count = jnp.asarray(count)
        cosine = _half_cosine(_remaining(count, warmup_steps, cosine_steps), exponent)
        value = _f(end_value) + (_f(peak_value) - _f(end_value)) * cosine
        if warmup_steps > 0:
            warm = _lerp(count, 0, warmup_steps, init_value, peak_value)
            value = jnp.where(count < warmup_steps, warm, value)
        return value

    return schedule


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then constant."""
    fn = "warmup_constant_schedule"
    _checks.finite(fn, "init_value", init_value)
    _checks.finite(fn, "peak_value", peak_value)
    _checks.positive_int(fn, "warmup_steps", warmup_steps)
    return linear_schedule(init_value, peak_value, warmup_steps)


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Exponential decay by `decay_rate` every `transition_steps` steps.

    Rule::

        p = max(count - transition_begin, 0) / transition_steps      (floored if staircase)
        value = init_value * decay_rate^p, bounded by end_value if given
                (a floor when decay_rate < 1, a ceiling when decay_rate > 1)
    """
    fn = "exponential_decay"
    _checks.finite(fn, "init_value", init_value)
    _checks.positive_int(fn, "transition_steps", transition_steps)
    _checks.positive(fn, "decay_rate", decay_rate)
    _checks.non_negative_int(fn, "transition_begin", transition_begin)
    if end_value is not None:
        _checks.finite(fn, "end_value", end_value)

    def schedule(count):
        p = jnp.maximum(_f(count) - transition_begin, 0) / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = _f(init_value) * _f(decay_rate) ** p
        if end_value is not None:
            bound = jnp.maximum if decay_rate < 1 else jnp.minimum
            value = bound(value, _f(end_value))
        return value

    return schedule


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """`init_value`, multiplied by `scale` from each step `boundary` on (a step-wise decay).

    Example: `piecewise_constant_schedule(0.1, {1000: 0.1, 2000: 0.1})` is 0.1 before step
    1000, 0.01 from step 1000, and 0.001 from step 2000.
    """
    fn = "piecewise_constant_schedule"
    _checks.finite(fn, "init_value", init_value)
    items = sorted((boundaries_and_scales or {}).items())
    for boundary, factor in items:
        _checks.non_negative_int(fn, "boundaries_and_scales key", boundary)
        _checks.finite(fn, f"boundaries_and_scales[{boundary}]", factor)

    def schedule(count):
        t = jnp.asarray(count)
        value = jnp.broadcast_to(_f(init_value), jnp.shape(t))
        for boundary, factor in items:
            value = jnp.where(t < boundary, value, value * _f(factor))
        return value

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Runs `schedules[i]` from step `boundaries[i-1]` to `boundaries[i]`.

    Each schedule sees the steps counted from its own start: at step `t >= boundaries[i-1]`
    the value is `schedules[i](t - boundaries[i-1])`.
    """
    fn = "join_schedules"
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"{fn}: need one more schedule than boundaries, got {len(schedules)} schedules and "
            f"{len(boundaries)} boundaries."
        )
    for i, b in enumerate(boundaries):
        _checks.non_negative_int(fn, f"boundaries[{i}]", b)
    if list(boundaries) != sorted(boundaries):
        raise ValueError(f"{fn}: `boundaries` must be increasing, got {list(boundaries)}.")

    def schedule(count):
        t = jnp.asarray(count)
        value = _f(schedules[0](t))
        for boundary, sched in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(t < boundary, value, _f(sched(t - boundary)))
        return value

    return schedule
