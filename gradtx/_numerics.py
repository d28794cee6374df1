"""Small numerical building blocks shared by the transformations.

Conventions (see docs/numerics.md):

- Low-precision floating leaves (bfloat16, float16) are computed in float32 and rounded back to
  their storage dtype once per step. Wider leaves are computed in their own dtype.
- Hyperparameters are cast to a leaf's compute dtype, never the other way round, so a float32
  learning rate cannot promote bfloat16 updates to float32.
- Step counters are int32 scalars that saturate at the largest int32 instead of wrapping.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

INT32_MAX = np.iinfo(np.int32).max


def safe_increment(count: chex.Array) -> chex.Array:
    """`count + 1`, saturating at the largest value of `count`'s integer dtype."""
    largest = jnp.iinfo(count.dtype).max
    return jnp.where(count < largest, count + 1, largest).astype(count.dtype)


def zero_count() -> chex.Array:
    """The initial value of a step counter: an int32 scalar 0."""
    return jnp.zeros([], jnp.int32)


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype arithmetic on a leaf of `dtype` is carried out in.

    bfloat16 and float16 are widened to float32; float32, float64 and complex dtypes are kept.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


def real_dtype(dtype) -> jnp.dtype:
    """The real dtype matching `dtype` (float32 for complex64, the dtype itself for reals)."""
    return jnp.finfo(jnp.dtype(dtype)).dtype


def wider(a, b) -> jnp.dtype:
    """The wider of two floating dtypes (float32 for bfloat16 with float16).

    Unlike `jnp.promote_types`, this works under `jax_numpy_dtype_promotion="strict"`.
    """
    a, b = jnp.dtype(a), jnp.dtype(b)
    if a == b:
        return a
    if jnp.issubdtype(a, jnp.complexfloating) or jnp.issubdtype(b, jnp.complexfloating):
        # Complex with anything: complex, with the wider of the two real parts.
        real = wider(real_dtype(a), real_dtype(b))
        return (
            jnp.dtype(jnp.complex128)
            if real == jnp.dtype(jnp.float64)
            else jnp.dtype(jnp.complex64)
        )
    bits_a, bits_b = jnp.finfo(a).bits, jnp.finfo(b).bits
    if bits_a == bits_b:  # bfloat16 and float16: neither holds the other
        return jnp.dtype(jnp.float32)
    return a if bits_a > bits_b else b


def widen(x: chex.Array) -> chex.Array:
    """`x` in its compute dtype (a no-op for float32 and wider)."""
    return x.astype(compute_dtype(x.dtype))


def cast_like(value: chex.Numeric, x: chex.Array) -> chex.Array:
    """A hyperparameter `value` as an array of `x`'s real dtype (never promotes `x`)."""
    return as_dtype(value, x.dtype)


def as_dtype(value: chex.Numeric, dtype) -> chex.Array:
    """A hyperparameter `value` as a scalar of the real dtype matching `dtype`."""
    return jnp.asarray(value).astype(real_dtype(dtype))


def one_minus(value: chex.Numeric, dtype) -> chex.Array:
    """`1 - value` as a scalar of `dtype`, subtracted in float64 on the host for plain numbers.

    `1 - 0.999` formed in float32 after rounding 0.999 is 1.3e-5 (relative) off; formed first
    and rounded once, it is exact to half an ulp.
    """
    if isinstance(value, int | float):
        return as_dtype(1 - value, dtype)
    return 1 - as_dtype(value, dtype)


def ema(decay: chex.Numeric, old: chex.Array, new: chex.Array, dtype) -> chex.Array:
    """`decay * old + (1 - decay) * new` in `dtype`, with `1 - decay` formed by `one_minus`."""
    return as_dtype(decay, dtype) * old.astype(dtype) + one_minus(decay, dtype) * new


def safe_sqrt(x: chex.Array) -> chex.Array:
    """`sqrt(x)` for `x >= 0` whose gradient is 0, not NaN, at `x == 0`; NaN stays NaN."""
    zero = x == 0
    return jnp.where(zero, 0, jnp.sqrt(jnp.where(zero, 1, x)))


def abs_sq(x: chex.Array) -> chex.Array:
    """`|x|^2` as a real array (`x * conj(x)` for complex `x`)."""
    if jnp.iscomplexobj(x):
        return jnp.real(x * jnp.conj(x))
    return x * x
