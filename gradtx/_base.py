"""The protocol every gradtx transformation follows.

A gradient transformation is a pair of pure functions::

    init(params)                          -> state
    update(updates, state, params=None)   -> (new_updates, new_state)

`init` builds the state (a pytree of arrays, usually a NamedTuple) from the parameters; `update`
maps a pytree of updates (typically gradients) to new updates and the next state. Nothing is
stored anywhere else, so a transformation jits, vmaps, scans, shards and checkpoints like any
other pytree code. Transformations compose with `chain`, and `apply_updates` adds the final
updates to the parameters.

Some transformations need more than the gradient (the loss value, a function to re-evaluate it).
They are `GradientTransformationExtraArgs`, whose `update` accepts keyword arguments beyond
`params`; `chain` passes those keywords to the members that accept them and to no other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "OptState",
    "Params",
    "Schedule",
    "ScalarOrSchedule",
    "Updates",
    "identity",
    "with_extra_args_support",
]

Params = chex.ArrayTree
Updates = chex.ArrayTree
OptState = chex.ArrayTree
Numeric = chex.Numeric


class Schedule(Protocol):
    """A function of the integer step count returning a scalar hyperparameter value."""

    def __call__(self, count: chex.Numeric) -> chex.Numeric: ...


ScalarOrSchedule = float | jax.Array | Schedule


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]: ...


class TransformUpdateExtraArgsFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pure `(init, update)` pair; see the module docstring for the protocol."""

    init: TransformInitFn
    update: TransformUpdateFn


class GradientTransformationExtraArgs(GradientTransformation):
    """A transformation whose `update` also takes keyword arguments (`value=`, `value_fn=`, ...).

    `chain` forwards the keyword arguments it receives to every member of this type; plain
    `GradientTransformation` members never see them.
    """

    init: TransformInitFn
    update: TransformUpdateExtraArgsFn


class EmptyState(NamedTuple):
    """State of a stateless transformation: an empty pytree."""


def identity() -> GradientTransformation:
    """The transformation that returns its updates unchanged and keeps no state."""

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return updates, state

    return GradientTransformation(init_fn, update_fn)


def with_extra_args_support(tx: GradientTransformation) -> GradientTransformationExtraArgs:
    """Wraps `tx` so that its `update` accepts (and ignores) extra keyword arguments."""
    if isinstance(tx, GradientTransformationExtraArgs):
        return tx

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return tx.update(updates, state, params)

    return GradientTransformationExtraArgs(tx.init, update_fn)


def is_schedule(value: Any) -> bool:
    """True for a callable learning rate or hyperparameter (a schedule)."""
    return callable(value)


ScheduleFn = Callable[[chex.Numeric], chex.Numeric]
