"""Hyperparameters kept in the optimizer state, where they can be scheduled, read and set."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import chex
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics
from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    OptState,
    with_extra_args_support,
)


class InjectHyperparamsState(NamedTuple):
    """State of a transformation built by `inject_hyperparams`.

    `hyperparams` maps each injected argument name to its current value, a float32 (or int32)
    scalar array; `inner_state` is the state of the wrapped transformation.
    """

    count: chex.Array
    hyperparams: dict[str, chex.Array]
    inner_state: OptState


def _is_number(value: Any) -> bool:
    """True for a real, non-boolean scalar: a Python int or float, or a 0-d int/float array."""
    if isinstance(value, bool | np.bool_ | type):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    return (
        dtype is not None
        and tuple(shape) == ()
        and (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))
    )


def _slot_dtype(value: Any, float_dtype: jnp.dtype) -> jnp.dtype:
    """int32 for integer values, `float_dtype` for floating ones."""
    dtype = jnp.result_type(value) if hasattr(value, "dtype") else np.asarray(value).dtype
    return jnp.dtype(jnp.int32) if jnp.issubdtype(dtype, jnp.integer) else float_dtype


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformationExtraArgs]:
    """Wraps a transformation factory so that its numeric hyperparameters live in the state.

    `inject_hyperparams(gradtx.adamw)` takes the same arguments as `gradtx.adamw` and returns
    a transformation whose state is `InjectHyperparamsState(count, hyperparams, inner_state)`.
    At every step the factory is called again with the current hyperparameter values, as
    scalar arrays, and its `update` is applied::

        h_t     = {name: schedule(t) or the value in state.hyperparams}    t = 0, 1, ...
        u_t, s  = inner_factory(**h_t).update(g_t, inner_state, params)
        state   = (t + 1, h_t, s)

    Which arguments are injected:

    - a number (Python int or float, or a 0-d integer or floating array) is injected and can
      be set from outside between steps;
    - a callable is a schedule: it is evaluated at `count` every step (its value is what
      `state.hyperparams` holds), unless its name is listed in `static_args`. A schedule must
      return a real scalar; anything else (e.g. a `mask` function, which returns a tree of
      bools) raises at construction and must be listed in `static_args`;
    - everything else (bools, None, dtypes such as `jnp.bfloat16`, masks given as trees,
      arrays that are not scalars) and every argument named in `static_args` is passed to the
      factory unchanged.

    Integer sizes and loop counts (e.g. `muon`'s `ns_steps`) must stay Python ints: when the
    factory refuses an injected value, construction raises and names the arguments to list in
    `static_args`.

    Injected floats are stored as `hyperparam_dtype` (float32 by default) scalars and integers
    as int32 scalars, whatever the parameters' dtype; gradtx transformations cast them to each
    leaf's compute dtype, so bfloat16 parameters stay bfloat16. Give a hyperparameter that you
    may later set to a fraction as a float (`learning_rate=1.0`, not `1`): an integer slot
    refuses floating values.

    Reading and setting values (no new compilation as long as the new value is a scalar of the
    same dtype; `jnp.asarray(v)` and Python floats are weakly typed and cost one more trace)::

        opt = gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=1e-3, weight_decay=0.01)
        state = opt.init(params)
        ...
        lr_now = state.hyperparams["learning_rate"]             # e.g. for logging
        hyperparams = dict(state.hyperparams, learning_rate=jnp.float32(1e-4))
        state = state._replace(hyperparams=hyperparams)         # used from the next step on

    An entry that comes from a schedule is recomputed every step, so setting it has no effect.

    Args:
        inner_factory: a function returning a `GradientTransformation`, such as `gradtx.adamw`
            or `gradtx.scale_by_adam`. Its checks must let traced scalars through, as gradtx
            factories do for every float hyperparameter.
        static_args: names of arguments never injected (a string or an iterable of strings).
        hyperparam_dtype: the floating dtype injected floats are stored in (float32 by default;
            e.g. `jnp.float64` with `jax_enable_x64` for float64 parameters).

    Returns:
        A factory with the signature of `inner_factory` returning a
        `GradientTransformationExtraArgs` (keyword arguments of `update` are forwarded to the
        inner transformation when it accepts them).
    """
    fn = "inject_hyperparams"
    if not callable(inner_factory):
        raise TypeError(
            f"{fn}: `inner_factory` must be a function returning a GradientTransformation "
            f"(e.g. `gradtx.adamw`), got {inner_factory!r}."
        )
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    factory_name = getattr(inner_factory, "__name__", repr(inner_factory))
    unknown = sorted(static - set(signature.parameters))
    if unknown:
        raise ValueError(
            f"{fn}: `static_args` names {unknown}, which {factory_name} does not take. Its "
            f"arguments are {list(signature.parameters)}."
        )
    float_dtype = _checks.float_dtype(fn, "hyperparam_dtype", hyperparam_dtype)
    float_dtype = float_dtype or jnp.dtype(jnp.float32)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

    @functools.wraps(inner_factory)
    def factory(*args: Any, **kwargs: Any) -> GradientTransformationExtraArgs:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        numbers, schedules = {}, {}
        for name, value in bound.arguments.items():
            if name in static or signature.parameters[name].kind in variadic:
                continue
            if _is_number(value):
                numbers[name] = value
            elif callable(value) and not isinstance(value, type):
                schedules[name] = value
        dtypes = {k: _slot_dtype(v, float_dtype) for k, v in numbers.items()}
        zero = _numerics.zero_count()
        for name, schedule in schedules.items():
            value = schedule(zero)
            if not _is_number(value):
                raise TypeError(
                    f"{fn}: `{name}` is callable, so it is treated as a schedule, but "
                    f"{name}(0) returned {value!r}, not a real scalar. If `{name}` is not a "
                    f"schedule, list it in `static_args`, e.g. "
                    f"inject_hyperparams({factory_name}, static_args=({name!r},))."
                )
            dtypes[name] = _slot_dtype(value, float_dtype)

        def build(hyperparams):
            call = inspect.BoundArguments(signature, dict(bound.arguments))
            call.arguments.update(hyperparams)
            tx = inner_factory(*call.args, **call.kwargs)
            _checks.transformation(fn, f"{factory_name}(...)", tx)
            return tx

        def current(count, hyperparams):
            values = {k: jnp.asarray(v).astype(dtypes[k]) for k, v in hyperparams.items()}
            values.update(
                {k: jnp.asarray(s(count)).astype(dtypes[k]) for k, s in schedules.items()}
            )
            return values

        # Check the values as given (plain numbers give the clearest messages) now, not at the
        # first step; a schedule is checked through its first value.
        first = {k: s(zero) for k, s in schedules.items()}
        build({**numbers, **first})
        _check_injectable(fn, factory_name, build, {**numbers, **first}, current(zero, numbers))

        def init_fn(params):
            count = _numerics.zero_count()
            hyperparams = current(count, numbers)
            return InjectHyperparamsState(count, hyperparams, build(hyperparams).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            given = _checked_hyperparams(fn, state, dtypes, schedules)
            hyperparams = current(state.count, given)
            inner = with_extra_args_support(build(hyperparams))
            updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
            count = _numerics.safe_increment(state.count)
            return updates, InjectHyperparamsState(count, hyperparams, inner_state)

        return GradientTransformationExtraArgs(init_fn, update_fn)

    return factory


def _check_injectable(fn, factory_name, build, plain, injected) -> None:
    """Raises, naming the arguments, if the factory refuses some values as scalar arrays.

    Integer sizes and loop counts (e.g. `ns_steps`) are often checked to be Python ints; they
    cannot be injected and belong in `static_args`.
    """
    try:
        build(injected)
        return
    except (TypeError, ValueError):
        pass
    refused = {}
    for name, value in injected.items():
        try:
            build({**plain, name: value})
        except (TypeError, ValueError) as e:
            refused[name] = str(e)
    if not refused:  # only the combination fails: report it as the factory says
        build(injected)
    names = tuple(sorted(refused))
    one = len(names) == 1
    raise TypeError(
        f"{fn}: {factory_name} refuses {', '.join(f'`{n}`' for n in names)} as "
        f"{'a scalar array' if one else 'scalar arrays'}, so {'it' if one else 'they'} cannot be "
        f"injected: {refused[names[0]]} List {'it' if one else 'them'} in `static_args`: "
        f"inject_hyperparams({factory_name}, static_args={names!r})."
    )


def _checked_hyperparams(fn, state, dtypes, schedules) -> dict[str, Any]:
    """The settable entries of `state.hyperparams`, after checking their names and shapes."""
    if not isinstance(state, InjectHyperparamsState):
        raise TypeError(
            f"{fn}: expected the InjectHyperparamsState built by this transformation's `init`, "
            f"got {type(state).__name__}."
        )
    given = dict(state.hyperparams)
    if sorted(given) != sorted(dtypes):
        raise ValueError(
            f"{fn}: `state.hyperparams` has keys {sorted(given)}, expected {sorted(dtypes)}. "
            f"Replace values of existing entries only."
        )
    for name, value in given.items():
        shape, dtype = jnp.shape(value), jnp.result_type(value)
        if shape != ():
            raise ValueError(
                f"{fn}: state.hyperparams[{name!r}] must be a scalar, got shape {shape}."
            )
        if jnp.issubdtype(dtypes[name], jnp.integer) and not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(
                f"{fn}: state.hyperparams[{name!r}] was injected as an integer and cannot hold "
                f"a {dtype} value. Give it as a float when building the transformation "
                f"(e.g. `{name}=1.0`, not `{name}=1`)."
            )
    return {k: v for k, v in given.items() if k not in schedules}
