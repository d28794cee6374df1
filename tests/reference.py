"""Float64 NumPy transcriptions of the published update rules, used as test oracles.

Written from the papers' formulas; this module never imports gradtx. Each function takes a
parameter array, a list of gradient arrays (one per step) and hyperparameters, and returns the
list of parameters after each step.
"""

from __future__ import annotations

import math

import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def lr_at(learning_rate, t):
    return learning_rate(t) if callable(learning_rate) else learning_rate


def sgd(theta, grads, learning_rate, momentum=0.0, nesterov=False):
    """v_t = momentum * v_{t-1} + lr_t * g_t;  theta -= v_t  (or lr_t * g_t + momentum * v_t)."""
    theta, v, out = _f64(theta), 0.0, []
    for t, g in enumerate(grads):
        step = lr_at(learning_rate, t) * _f64(g)
        v = momentum * v + step
        theta = theta - (step + momentum * v if nesterov else v)
        out.append(theta)
    return out


def sgd_pytorch_form(theta, grads, learning_rate, momentum=0.0):
    """PyTorch's SGD: b_t = momentum * b_{t-1} + g_t;  theta -= lr_t * b_t."""
    theta, b, out = _f64(theta), 0.0, []
    for t, g in enumerate(grads):
        b = momentum * b + _f64(g)
        theta = theta - lr_at(learning_rate, t) * b
        out.append(theta)
    return out


def adam(
    theta,
    grads,
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    weight_decay=0.0,
    nesterov=False,
):
    """Kingma & Ba (2015), Algorithm 1; decoupled decay as in Loshchilov & Hutter (2019).

    With nesterov, the NAdam first moment of Dozat (2016):
    m_hat = b1 m_t / (1 - b1^(t+1)) + (1 - b1) g_t / (1 - b1^t).
    """
    theta, m, v, out = _f64(theta), 0.0, 0.0, []
    for i, g in enumerate(grads):
        t = i + 1
        g = _f64(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        direction = m_hat / (np.sqrt(v_hat + eps_root) + eps)
        theta = theta - lr_at(learning_rate, i) * (direction + weight_decay * theta)
        out.append(theta)
    return out


def lion(theta, grads, learning_rate, b1=0.9, b2=0.99, weight_decay=0.0):
    """Chen et al. (2023), Algorithm 2 (Lion)."""
    theta, m, out = _f64(theta), 0.0, []
    for i, g in enumerate(grads):
        g = _f64(g)
        c = b1 * m + (1 - b1) * g
        theta = theta - lr_at(learning_rate, i) * (np.sign(c) + weight_decay * theta)
        m = b2 * m + (1 - b2) * g
        out.append(theta)
    return out


def clip_by_global_norm(grads: list, max_norm: float) -> list:
    """Rescales the list of arrays so that their joint L2 norm is at most max_norm."""
    grads = [_f64(g) for g in grads]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if norm <= max_norm:
        return grads
    return [g * (max_norm / norm) for g in grads]


# ---- schedules, from their defining formulas -------------------------------------------------


def linear(t, init, end, steps, begin=0):
    s = min(max(t - begin, 0), steps) / steps
    return init + (end - init) * s


def cosine_decay(t, init, decay_steps, alpha=0.0, exponent=1.0):
    s = min(t, decay_steps) / decay_steps
    return init * ((1 - alpha) * (0.5 * (1 + math.cos(math.pi * s))) ** exponent + alpha)


def warmup_cosine(t, init, peak, warmup, total, end=0.0, exponent=1.0):
    if t <= warmup and warmup > 0:
        return init + (peak - init) * t / warmup
    s = min(t - warmup, total - warmup) / max(total - warmup, 1)
    return end + (peak - end) * (0.5 * (1 + math.cos(math.pi * s))) ** exponent


def exponential(t, init, steps, rate, begin=0, staircase=False, end=None):
    p = max(t - begin, 0) / steps
    if staircase:
        p = math.floor(p)
    value = init * rate**p
    if end is not None:
        value = max(value, end) if rate < 1 else min(value, end)
    return value
