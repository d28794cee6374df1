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


# ---- Muon ---------------------------------------------------------------------------------------


def newton_schulz(x, coeffs=(3.4445, -4.7750, 2.0315), steps=5, eps=1e-8):
    """Jordan et al. (2024): the quintic Newton-Schulz iteration, on the orientation with fewer
    rows, after dividing by the Frobenius norm (+ eps)."""
    x = _f64(x)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.linalg.norm(x) + eps)
    a, b, c = coeffs
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon(theta, grads, learning_rate, beta=0.95, nesterov=True, weight_decay=0.0, eps=1e-8):
    """Jordan et al. (2024), Muon on one (fan_in, fan_out) matrix; the update is scaled by
    sqrt(max(1, fan_out / fan_in)) and the weight decay is decoupled."""
    theta, m, out = _f64(theta), 0.0, []
    fan_in, fan_out = theta.shape
    for i, g in enumerate(grads):
        g = _f64(g)
        m = beta * m + (1 - beta) * g
        d = beta * m + (1 - beta) * g if nesterov else m
        o = math.sqrt(max(1.0, fan_out / fan_in)) * newton_schulz(d, eps=eps)
        theta = theta - lr_at(learning_rate, i) * (o + weight_decay * theta)
        out.append(theta)
    return out


# ---- moving averages, gradient processing, projections ---------------------------------------


def ema(grads, decay, debias=True):
    """e_t = decay e_{t-1} + (1 - decay) g_t, e_0 = 0; returned as e_t / (1 - decay^t) if debias."""
    e, out = 0.0, []
    for t, g in enumerate(grads, start=1):
        e = decay * e + (1 - decay) * _f64(g)
        out.append(e / (1 - decay**t) if debias else e)
    return out


def params_ema(theta0, thetas, decay):
    """a_0 = theta_0, a_{t+1} = d_t a_t + (1 - d_t) theta_{t+1}; d_t = decay(t) or decay."""
    a, out = _f64(theta0), []
    for t, theta in enumerate(thetas):
        d = decay(t) if callable(decay) else decay
        a = d * a + (1 - d) * _f64(theta)
        out.append(a)
    return out


def block_rms_clip(g, threshold):
    """Adafactor's update clipping, applied to one block: g / max(1, rms(g) / threshold)."""
    g = _f64(g)
    rms = math.sqrt(float(np.mean(g * g)))
    return g / max(1.0, rms / threshold)


def unit_norms(x):
    """Brock et al. (2021): the norm of each output unit, broadcast to x's shape.

    Arrays with ndim >= 2 have one unit per index of the last axis (the weights feeding one
    output); scalars and vectors are one unit.
    """
    x = _f64(x)
    if x.ndim < 2:
        return np.full(x.shape, math.sqrt(float(np.sum(x * x))))
    columns = x.reshape(-1, x.shape[-1])  # one column per output unit
    norms = np.sqrt(np.einsum("ij,ij->j", columns, columns))
    return np.broadcast_to(norms, x.shape)


def adaptive_grad_clip(g, p, clipping, eps=1e-3):
    """Brock et al. (2021), eq. (3): g * lambda max(|p|, eps) / |g| where |g| exceeds that bound."""
    g = _f64(g)
    g_norm, bound = unit_norms(g), clipping * np.maximum(unit_norms(p), eps)
    return np.where(g_norm < bound, g, g * bound / np.maximum(g_norm, 1e-300))


def centralize(g):
    """Yong et al. (2020): subtract each output unit's mean (all axes but the last) for ndim > 1."""
    g = _f64(g)
    if g.ndim < 2:
        return g
    columns = g.reshape(-1, g.shape[-1])
    return (columns - columns.sum(axis=0) / columns.shape[0]).reshape(g.shape)


def per_example_clip_sum(per_example_grads, l2_norm_clip):
    """Abadi et al. (2016), DP-SGD: clip each example's joint norm to C, then sum the examples.

    `per_example_grads` is a list of arrays that share a leading batch axis.
    """
    grads = [_f64(g) for g in per_example_grads]
    total = [np.zeros(g.shape[1:]) for g in grads]
    for i in range(grads[0].shape[0]):
        norm = math.sqrt(sum(float(np.sum(g[i] * g[i])) for g in grads))
        factor = min(1.0, l2_norm_clip / norm) if norm > 0 else 1.0
        total = [s + factor * g[i] for s, g in zip(total, grads, strict=True)]
    return total


def normalize_by_norm(grads, scale_factor=1.0, eps=1e-6):
    """scale_factor * g / (||g|| + eps), the norm taken over all arrays of the list together."""
    grads = [_f64(g) for g in grads]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    return [scale_factor * g / (norm + eps) for g in grads]


def projection_simplex(v, scale=1.0):
    """Duchi et al. (2008), Figure 1: Euclidean projection of a vector onto {w >= 0, sum w = z}."""
    v = _f64(v).ravel()
    mu = sorted(v.tolist(), reverse=True)
    partial, rho, rho_sum = 0.0, 0, 0.0
    for j, m in enumerate(mu, start=1):
        partial += m
        if m - (partial - scale) / j > 0:
            rho, rho_sum = j, partial
    theta = (rho_sum - scale) / rho
    return np.maximum(v - theta, 0.0)


def projection_simplex_bisection(v, scale=1.0, iters=200):
    """The same projection by another route: bisection on theta in sum(max(v - theta, 0)) = z."""
    v = _f64(v).ravel()
    lo, hi = float(v.min()) - scale, float(v.max())
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if np.maximum(v - mid, 0.0).sum() > scale:
            lo = mid
        else:
            hi = mid
    return np.maximum(v - 0.5 * (lo + hi), 0.0)


# ---- AdaBelief, Yogi, Adan; LAMB, LARS, NovoGrad, Fromage; Adafactor, SM3 ---------------------


def _leaf_norm(x):
    return math.sqrt(float(np.sum(_f64(x) ** 2)))


def adabelief(
    theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False
):
    """Zhuang et al. (2020), Algorithm 2: s_t = b2 s + (1 - b2)(g - m_t)^2 + eps_root, with
    bias corrections and theta -= lr m^ / (sqrt(s^) + eps); NAdam's m^ with nesterov."""
    theta, m, s, out = _f64(theta), 0.0, 0.0, []
    for i, g in enumerate(grads):
        t, g = i + 1, _f64(g)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps_root
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        s_hat = s / (1 - b2**t)
        theta = theta - lr_at(learning_rate, i) * m_hat / (np.sqrt(s_hat) + eps)
        out.append(theta)
    return out


def yogi(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, v0=1e-6):
    """Zaheer et al. (2018), Algorithm 2 (Yogi) with m_0 = 0, v_0 = v0 and Adam's bias corrections:
    v_t = v - (1 - b2) sign(v - g^2) g^2."""
    theta, m, out = _f64(theta), 0.0, []
    v = np.full(theta.shape, v0)
    for i, g in enumerate(grads):
        t, g = i + 1, _f64(g)
        m = b1 * m + (1 - b1) * g
        v = v - (1 - b2) * np.sign(v - g * g) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr_at(learning_rate, i) * m_hat / (np.sqrt(v_hat + eps_root) + eps)
        out.append(theta)
    return out


def adan(
    theta,
    grads,
    learning_rate,
    b1=0.98,
    b2=0.92,
    b3=0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay=0.0,
    proximal=False,
):
    """Xie et al. (2022), Algorithm 1, with the paper's beta_i = 1 - b_i, moments started at 0 and
    bias-corrected (the authors' code), eps outside the root; decay decoupled (theta -= lr wd
    theta) or, with proximal, the paper's theta = (theta - lr u) / (1 + lr wd)."""
    theta, m, v, n, g_prev, out = _f64(theta), 0.0, 0.0, 0.0, None, []
    for i, g in enumerate(grads):
        t, g = i + 1, _f64(g)
        d = np.zeros_like(g) if g_prev is None else g - g_prev
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * d
        n = b3 * n + (1 - b3) * (g + b2 * d) ** 2
        u = (m / (1 - b1**t) + b2 * v / (1 - b2**t)) / (np.sqrt(n / (1 - b3**t) + eps_root) + eps)
        lr = lr_at(learning_rate, i)
        if proximal:
            theta = (theta - lr * u) / (1 + lr * weight_decay)
        else:
            theta = theta - lr * (u + weight_decay * theta)
        g_prev = g
        out.append(theta)
    return out


def lamb(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0):
    """You et al. (2020), Algorithm 2 (LAMB) on one layer, phi = identity:
    theta -= lr ||theta|| / ||r + wd theta|| (r + wd theta), the ratio 1 if a norm is 0."""
    theta, m, v, out = _f64(theta), 0.0, 0.0, []
    for i, g in enumerate(grads):
        t, g = i + 1, _f64(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        d = r + weight_decay * theta
        p_norm, d_norm = _leaf_norm(theta), _leaf_norm(d)
        ratio = p_norm / d_norm if p_norm > 0 and d_norm > 0 else 1.0
        theta = theta - lr_at(learning_rate, i) * ratio * d
        out.append(theta)
    return out


def lars(
    theta,
    grads,
    learning_rate,
    weight_decay=0.0,
    trust_coefficient=0.001,
    eps=0.0,
    momentum=0.9,
    nesterov=False,
    paper_denominator=False,
):
    """You et al. (2017), Algorithm 1 (LARS) on one layer: local lr = eta ||w|| / ||g + wd w||
    (with paper_denominator, eta ||w|| / (||g|| + wd ||w||)), 1 if a norm is 0;
    v = m v + lr local_lr (g + wd w); w -= v (Nesterov: w -= lr local_lr d + m v)."""
    theta, v, out = _f64(theta), 0.0, []
    for i, g in enumerate(grads):
        g = _f64(g)
        d = g + weight_decay * theta
        p_norm = _leaf_norm(theta)
        d_norm = _leaf_norm(g) + weight_decay * p_norm if paper_denominator else _leaf_norm(d)
        ratio = trust_coefficient * p_norm / (d_norm + eps) if p_norm > 0 and d_norm > 0 else 1.0
        step = lr_at(learning_rate, i) * ratio * d
        v = momentum * v + step
        theta = theta - (step + momentum * v if nesterov else v)
        out.append(theta)
    return out


def novograd(
    theta, grads, learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0
):
    """Ginsburg et al. (2019), Algorithm 1 (NovoGrad) on one layer: v_1 = ||g_1||^2,
    v_t = b2 v + (1 - b2) ||g_t||^2, m_t = b1 m + g / (sqrt(v_t + eps_root) + eps) + wd w."""
    theta, m, v, out = _f64(theta), 0.0, None, []
    for i, g in enumerate(grads):
        g = _f64(g)
        sq = float(np.sum(g * g))
        v = sq if v is None else b2 * v + (1 - b2) * sq
        m = b1 * m + g / (math.sqrt(v + eps_root) + eps) + weight_decay * theta
        theta = theta - lr_at(learning_rate, i) * m
        out.append(theta)
    return out


def fromage(theta, grads, learning_rate, min_norm=1e-6):
    """Bernstein et al. (2020), Algorithm 1 (Fromage) on one layer, norms floored at min_norm:
    w = (w - lr ||w|| / ||g|| g) / sqrt(1 + lr^2)."""
    theta, out = _f64(theta), []
    for i, g in enumerate(grads):
        g = _f64(g)
        lr = lr_at(learning_rate, i)
        ratio = max(_leaf_norm(theta), min_norm) / max(_leaf_norm(g), min_norm)
        theta = (theta - lr * ratio * g) / math.sqrt(1 + lr * lr)
        out.append(theta)
    return out


def _factored_second_moment(g_sq, rows, cols, beta):
    """One step of Shazeer & Stern (2018), Algorithm 4, lines 3-5, on a matrix (sums, not means):
    R = beta R + (1 - beta) G 1_m;  C = beta C + (1 - beta) 1_n^T G;  V = R C / (1_n^T R)."""
    rows = beta * rows + (1 - beta) * g_sq.sum(axis=1)
    cols = beta * cols + (1 - beta) * g_sq.sum(axis=0)
    return rows, cols, np.outer(rows, cols) / rows.sum()


def adafactor(
    theta,
    grads,
    learning_rate=None,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    weight_decay_rate=None,
    eps=1e-30,
):
    """Shazeer & Stern (2018), Algorithms 4 (factored) and 5 (not factored) with update clipping,
    beta2_t = 1 - t^-decay_rate, relative step max(1e-3, rms(theta)) * lr_t (lr_t = min(1e-2,
    t^-1/2) without a learning rate). An array with ndim >= 2 whose second-largest dimension is
    >= min_dim_size_to_factor is a batch of matrices over its two largest axes (the earlier
    axis wins a tie for second largest). Then an optional momentum average of the step and
    theta -= step + weight_decay_rate * theta."""
    theta = _f64(theta)
    shape = theta.shape
    factored = len(shape) >= 2 and sorted(shape)[-2] >= min_dim_size_to_factor
    if factored:
        order = sorted(range(len(shape)), key=lambda k: (shape[k], k))  # ties: earlier is smaller
        col_axis, row_axis = order[-2], order[-1]  # matrices are (row_axis, col_axis)
        batch = [k for k in range(len(shape)) if k not in (row_axis, col_axis)]
        perm = [*batch, row_axis, col_axis]
        n_batch = int(np.prod([shape[k] for k in batch]))
        rows = np.zeros((n_batch, shape[row_axis]))
        cols = np.zeros((n_batch, shape[col_axis]))
    else:
        v = np.zeros(shape)
    m, out = 0.0, []
    for i, g in enumerate(grads):
        t, g = i + 1, _f64(g)
        beta = 1 - t ** (-decay_rate)
        g_sq = g * g + eps
        if factored:
            mats = np.transpose(g_sq, perm).reshape(n_batch, shape[row_axis], shape[col_axis])
            v_hat = np.empty_like(mats)
            for k in range(n_batch):
                rows[k], cols[k], v_hat[k] = _factored_second_moment(
                    mats[k], rows[k], cols[k], beta
                )
            permuted_shape = [shape[k] for k in perm]
            v_full = np.transpose(v_hat.reshape(permuted_shape), np.argsort(perm))
        else:
            v = beta * v + (1 - beta) * g_sq
            v_full = v
        u = g / np.sqrt(v_full)
        if clipping_threshold is not None:
            u = u / max(1.0, math.sqrt(float(np.mean(u * u))) / clipping_threshold)
        lr = min(1e-2, 1 / math.sqrt(t)) if learning_rate is None else lr_at(learning_rate, i)
        step = lr * u
        if multiply_by_parameter_scale:
            step = step * max(math.sqrt(float(np.mean(theta * theta))), 1e-3)
        if momentum is not None:
            m = momentum * m + (1 - momentum) * step
            step = m
        if weight_decay_rate is not None:
            step = step + weight_decay_rate * theta
        theta = theta - step
        out.append(theta)
    return out


def sm3(theta, grads, learning_rate, momentum=0.9, b2=1.0, eps=1e-8):
    """Anil et al. (2019), SM3-II, element by element. Cover sets of an array with ndim >= 2: the
    slices {i : i_j = r} for each axis j and index r; a 0-d or 1-d array has one set per element.
      nu'(i) = b2 min_{S ∋ i} mu(S) + (1 - b2 if b2 < 1 else 1) g(i)^2
      s(i)   = g(i) / sqrt(nu'(i) + eps)  (0 if nu'(i) = 0);  mu(S) = max_{i in S} nu'(i)
    then m = momentum m + (1 - momentum) s (none if momentum is 0) and theta -= lr m."""
    theta, out, m = _f64(theta), [], 0.0
    shape = theta.shape
    if len(shape) <= 1:
        sets_of = lambda idx: [("full", idx)]
    else:
        sets_of = lambda idx: [(j, idx[j]) for j in range(len(shape))]
    mu = {}
    for i, g in enumerate(grads):
        g = _f64(g)
        nu = np.zeros(shape)
        for idx in np.ndindex(*shape):
            bound = min(mu.get(s, 0.0) for s in sets_of(idx))
            nu[idx] = b2 * bound + (1 - b2 if b2 < 1 else 1.0) * g[idx] ** 2
        s = np.where(nu > 0, g / np.sqrt(nu + eps), 0.0)
        mu = {}
        for idx in np.ndindex(*shape):
            for cover in sets_of(idx):
                mu[cover] = max(mu.get(cover, -np.inf), nu[idx])
        m = momentum * m + (1 - momentum) * s
        theta = theta - lr_at(learning_rate, i) * m
        out.append(theta)
    return out


# ---- L-BFGS -------------------------------------------------------------------------------------


def lbfgs_directions(xs, gs, memory_size=10, scale_init_precond=True, eps=2.0**-23):
    """Nocedal & Wright (2006), Algorithm 7.4 with H0 = gamma I (eq. 7.20): the directions
    H_t g_t for a sequence of points x_t and gradients g_t (arrays of any shape, flattened).

    A pair (s, y) is stored when s.y > eps * y.y (the oldest dropped beyond memory_size);
    gamma = s.y / y.y of the newest pair, min(1, 1 / ||g||) while there is none."""
    pairs, out, prev = [], [], None
    for x, g in zip(xs, gs, strict=True):
        shape = np.shape(g)
        x, g = _f64(x).ravel(), _f64(g).ravel()
        if prev is not None:
            s, y = x - prev[0], g - prev[1]
            if s @ y > eps * (y @ y):
                pairs = [*pairs, (s, y, 1.0 / (s @ y))][-memory_size:]
        if not scale_init_precond:
            gamma = 1.0
        elif pairs:
            s, y, _ = pairs[-1]
            gamma = (s @ y) / (y @ y)
        else:
            gamma = min(1.0, 1.0 / np.linalg.norm(g))
        q, alphas = g.copy(), []
        for s, y, rho in reversed(pairs):
            alphas.append(rho * (s @ q))
            q = q - alphas[-1] * y
        r = gamma * q
        for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
            r = r + (alpha - rho * (y @ r)) * s
        out.append(r.reshape(shape))
        prev = x, g
    return out


# ---- RMSProp, AMSGrad, NAdam (momentum schedule), RAdam, signSGD, Signum -------------------------


def rmsprop(
    theta,
    grads,
    learning_rate,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=False,
    centered=False,
    momentum=0.0,
    nesterov=False,
):
    """Tieleman & Hinton (2012); centered as in Graves (2013); momentum on the
    learning-rate-scaled step: b_t = momentum b_{t-1} + lr d_t, theta -= b_t (or, Nesterov,
    theta -= lr d_t + momentum b_t)."""
    theta, mu, b, out = _f64(theta), 0.0, 0.0, []
    nu = np.full_like(theta, initial_scale)
    for i, g in enumerate(grads):
        g = _f64(g)
        nu = decay * nu + (1 - decay) * g * g
        mu = decay * mu + (1 - decay) * g
        s = nu - mu * mu if centered else nu
        d = g / (np.sqrt(s + eps) if eps_in_sqrt else np.sqrt(s) + eps)
        step = lr_at(learning_rate, i) * d
        b = momentum * b + step
        theta = theta - (step + momentum * b if nesterov else b)
        out.append(theta)
    return out


def amsgrad(theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-8, form="optax"):
    """Reddi et al. (2018), Algorithm 2 with constant b1, in three forms of the v correction:
    "paper" (none, and no m correction), "optax" (max of v_t / (1 - b2^t)), "torch" (max of
    v_t, then divided by 1 - b2^t)."""
    theta, m, v, vmax, out = _f64(theta), 0.0, 0.0, 0.0, []
    for i, g in enumerate(grads):
        t = i + 1
        g = _f64(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if form == "optax":
            vmax = np.maximum(vmax, v / (1 - b2**t))
            v_hat = vmax
        else:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - b2**t) if form == "torch" else vmax
        m_hat = m if form == "paper" else m / (1 - b1**t)
        theta = theta - lr_at(learning_rate, i) * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def nadam_momentum_schedule(
    theta, grads, learning_rate, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3
):
    """Dozat (2016), Algorithm 2, with the schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))."""
    theta, m, v, prod, out = _f64(theta), 0.0, 0.0, 1.0, []
    for i, g in enumerate(grads):
        t = i + 1
        g = _f64(g)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = (1 - mu) * g / (1 - prod) + mu_next * m / (1 - prod * mu_next)
        theta = theta - lr_at(learning_rate, i) * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(theta)
    return out


def radam(
    theta,
    grads,
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    threshold=5.0,
    nesterov=False,
    eps_form="adam",
):
    """Liu et al. (2020), Algorithm 2. eps_form "adam": divide by sqrt(v_hat) + eps;
    "torch": by (sqrt(v_t) + eps) / sqrt(1 - b2^t)."""
    theta, m, v, out = _f64(theta), 0.0, 0.0, []
    rho_inf = 2 / (1 - b2) - 1
    for i, g in enumerate(grads):
        t = i + 1
        g = _f64(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > threshold:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            if eps_form == "torch":
                denom = (np.sqrt(v) + eps) / math.sqrt(1 - b2**t)
            else:
                denom = np.sqrt(v / (1 - b2**t)) + eps
            step = r * m_hat / denom
        else:
            step = m_hat
        theta = theta - lr_at(learning_rate, i) * step
        out.append(theta)
    return out


def signum(theta, grads, learning_rate, beta=0.9):
    """Bernstein et al. (2018), Algorithm 3 (beta = 0: signSGD, Algorithm 1)."""
    theta, m, out = _f64(theta), 0.0, []
    for i, g in enumerate(grads):
        m = beta * m + (1 - beta) * _f64(g)
        theta = theta - lr_at(learning_rate, i) * np.sign(m)
        out.append(theta)
    return out


# ---- Polyak step size, Prodigy, D-Adaptation; schedule-free; optimistic GD; plateau wrappers ---


def polyak_sgd(theta, grads, values, max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0):
    """Loizou et al. (2021), SPS_max: x -= s(t) min((f - f*) / (||g||^2 + eps), gamma_max) g."""
    theta, out = _f64(theta), []
    for t, (g, f) in enumerate(zip(grads, values, strict=True)):
        g = _f64(g)
        denom = float(np.sum(g * g)) + eps
        step = min((f - f_min) / denom, max_learning_rate) if denom > 0 else 0.0
        theta = theta - lr_at(scaling, t) * step * g
        out.append(theta)
    return out


def prodigy(
    theta,
    grads,
    learning_rate=1.0,
    b1=0.9,
    b2=0.999,
    beta3=None,
    eps=1e-8,
    d0=1e-6,
    d_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup=False,
):
    """Mishchenko & Defazio (2023), Prodigy (Adam version), in the paper's notation.

    As in the authors' code: gamma_k = lr_k * sqrt(1 - b2^(k+1)) / (1 - b1^(k+1)) (Adam's bias
    correction), eps times d_{k+1}, decoupled weight decay; safeguard_warmup drops gamma_k
    from s. Returns the list of iterates.
    """
    beta3 = math.sqrt(b2) if beta3 is None else beta3
    x0 = _f64(theta)
    x, m, v, s, r, d, out = x0, 0.0, 0.0, 0.0, 0.0, d0, []
    for k, g in enumerate(grads):
        g = _f64(g)
        gamma = lr_at(learning_rate, k) * math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1))
        m = b1 * m + (1 - b1) * d * g
        v = b2 * v + (1 - b2) * d**2 * g * g
        r = beta3 * r + (1 - beta3) * gamma * d**2 * float(np.sum(g * (x0 - x)))
        s = beta3 * s + (1 - beta3) * (1.0 if safeguard_warmup else gamma) * d**2 * g
        l1 = float(np.sum(np.abs(s)))
        d_new = max(d, d_coef * r / l1) if l1 > 0 else d
        x = x - gamma * d * (m / (np.sqrt(v) + d_new * eps) + weight_decay * x)
        d = d_new
        out.append(x)
    return out


def dadapt_adamw(
    theta, grads, learning_rate=1.0, b1=0.9, b2=0.999, eps=1e-8, d0=1e-6, weight_decay=0.0
):
    """Defazio & Mishchenko (2023), Adam with D-Adaptation, in the paper's notation.

    As in the authors' code: <g_k, s_k> is weighted by A_k = diag(sqrt(v_k) + eps) of the
    previous step, and gamma_k includes Adam's bias correction.
    """
    sb2 = math.sqrt(b2)
    x, m, v, s, r, d, out = _f64(theta), 0.0, 0.0, 0.0, 0.0, d0, []
    for k, g in enumerate(grads):
        g = _f64(g)
        gamma = lr_at(learning_rate, k) * math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1))
        a_k = np.sqrt(v) + eps
        r = sb2 * r + (1 - sb2) * gamma * d * float(np.sum(g * s / a_k))
        m = b1 * m + (1 - b1) * d * gamma * g
        v = b2 * v + (1 - b2) * g * g
        s = sb2 * s + (1 - sb2) * d * gamma * g
        x = x - m / (np.sqrt(v) + eps) - weight_decay * d * gamma * x
        l1 = float(np.sum(np.abs(s)))
        d = max(d, r / ((1 - sb2) * l1)) if l1 > 0 else d
        out.append(x)
    return out


def dadapt_sgd(theta, grads, learning_rate=1.0, momentum=0.0, d0=1e-6):
    """Defazio & Mishchenko (2023), SGD with D-Adaptation.

    lambda_k = lr_k d_k / ||g_0||, s += lambda g, d_hat = (||s||^2 - sum lambda^2 ||g||^2) / ||s||;
    with momentum, x averages z = x_0 - s as in the authors' code.
    """
    x = _f64(theta)
    z, s, gsq, d, out = x, 0.0 * x, 0.0, d0, []
    g0_norm = math.sqrt(float(np.sum(_f64(grads[0]) ** 2)))
    for k, g in enumerate(grads):
        g = _f64(g)
        lam = lr_at(learning_rate, k) * d / g0_norm if g0_norm > 0 else 0.0
        s = s + lam * g
        gsq += lam**2 * float(np.sum(g * g))
        s_norm = math.sqrt(float(np.sum(s * s)))
        if s_norm > 0:
            d = max(d, (s_norm**2 - gsq) / s_norm)
        z = z - lam * g
        x = momentum * x + (1 - momentum) * z
        out.append(x)
    return out


def schedule_free(
    theta, grads, gammas, b1=0.9, weight_lr_power=2.0, direction=None, weight_decay=0.0
):
    """Defazio et al. (2024), schedule-free: returns the lists of y_t (params) and x_t.

    `gammas[t]` is gamma_{t+1}; `direction(t, g)` maps the gradient to the base step's
    direction (the gradient for SGD). z -= gamma (direction + weight_decay * y);
    c = gamma^p / sum gamma_i^p; x = (1 - c) x + c z; y = (1 - b1) z + b1 x.
    """
    x = z = y = _f64(theta)
    weight_sum, ys, xs = 0.0, [], []
    for t, g in enumerate(grads):
        d = _f64(g) if direction is None else direction(t, _f64(g))
        z = z - gammas[t] * (d + weight_decay * y)
        weight = gammas[t] ** weight_lr_power
        weight_sum += weight
        c = weight / weight_sum if weight_sum > 0 else 0.0
        x = (1 - c) * x + c * z
        y = (1 - b1) * z + b1 * x
        ys.append(y)
        xs.append(x)
    return ys, xs


def schedule_free_sgd(
    theta, grads, learning_rate, warmup_steps=None, b1=0.9, weight_decay=0.0, weight_lr_power=2.0
):
    """The paper's SGD form: gamma_t = lr min(1, t / T_warmup), t = 1, 2, ..."""
    w = warmup_steps or 1
    gammas = [learning_rate * min(1.0, t / w) for t in range(1, len(grads) + 1)]
    return schedule_free(theta, grads, gammas, b1, weight_lr_power, weight_decay=weight_decay)


def schedule_free_adamw(
    theta,
    grads,
    learning_rate,
    warmup_steps=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_lr_power=2.0,
):
    """The paper's AdamW form: v_t = b2 v + (1 - b2) g^2, direction g / (sqrt(v_t) + eps),
    gamma_t = lr sqrt(1 - b2^t) min(1, t / T_warmup), t = 1, 2, ..."""
    w = warmup_steps or 1
    gammas = [
        learning_rate * math.sqrt(1 - b2**t) * min(1.0, t / w) for t in range(1, len(grads) + 1)
    ]
    v = [0.0]

    def direction(t, g):
        v[0] = b2 * v[0] + (1 - b2) * g * g
        return g / (np.sqrt(v[0]) + eps)

    return schedule_free(theta, grads, gammas, b1, weight_lr_power, direction, weight_decay)


def optimistic_gd(theta, grads, learning_rate, alpha=1.0, beta=1.0):
    """Mokhtari et al. (2020): x -= lr ((alpha + beta) g_t - beta g_{t-1}), with g_{-1} = g_0."""
    theta, out, prev = _f64(theta), [], None
    for t, g in enumerate(grads):
        g = _f64(g)
        prev = g if prev is None else prev
        theta = theta - lr_at(learning_rate, t) * ((alpha + beta) * g - beta * prev)
        prev = g
        out.append(theta)
    return out


def reduce_on_plateau_scales(
    values,
    factor=0.1,
    patience=10,
    rtol=1e-4,
    atol=0.0,
    cooldown=0,
    accumulation_size=1,
    min_scale=0.0,
):
    """Optax's `reduce_on_plateau` (documented semantics): the scale after each loss value."""
    scale, best, plateau, cooling, acc, out = 1.0, math.inf, 0, 0, [], []
    for value in values:
        acc.append(value)
        if len(acc) == accumulation_size:
            avg, acc = sum(acc) / len(acc), []
            improved = avg < (1 - rtol) * best - atol
            best = avg if improved else best
            plateau = 0 if improved else plateau + 1
            if cooling > 0:
                cooling, plateau = cooling - 1, 0
            elif plateau == patience:
                scale, plateau, cooling = max(scale * factor, min_scale), 0, cooldown
        out.append(scale)
    return out


def apply_every(grads, k):
    """Sums k consecutive updates; emits the sum on every k-th step, zeros otherwise."""
    acc, out = 0.0, []
    for t, g in enumerate(grads):
        acc = _f64(g) if t % k == 0 else acc + _f64(g)
        out.append(acc if t % k == k - 1 else 0.0 * acc)
    return out


# ---- Shampoo ------------------------------------------------------------------------------------


def _sym_power(a, power, floor):
    """`a^power` of a symmetric matrix, eigenvalues clamped below at `floor`."""
    w, v = np.linalg.eigh(_f64(a))
    return (v * np.maximum(w, floor) ** power) @ v.T


def shampoo(
    theta,
    grads,
    learning_rate,
    b1=0.9,
    b2=1.0,
    eps=1e-6,
    max_preconditioner_dim=1024,
    preconditioning_compute_steps=1,
):
    """Gupta, Koren and Singer (2018), Algorithm 1 (matrices: L^-1/4 G R^-1/4), with heavy-ball
    momentum m_t = b1 m_{t-1} + P_t and statistics b2 S + w X (w = 1 if b2 == 1 else 1 - b2).
    Other leaves: element-wise order-1 rule P = g / sqrt(H), H_0 = eps. Roots use eigenvalues
    clamped at eps and are recomputed at steps 1, 1 + k, ...
    """
    theta, m, out = _f64(theta), 0.0, []
    w = 1.0 if b2 == 1.0 else 1.0 - b2
    matrix = theta.ndim == 2 and max(theta.shape) <= max_preconditioner_dim
    if matrix:
        left, right = eps * np.eye(theta.shape[0]), eps * np.eye(theta.shape[1])
    else:
        h = np.full(theta.shape, eps)
    for i, g in enumerate(grads):
        g = _f64(g)
        if matrix:
            left = b2 * left + w * g @ g.T
            right = b2 * right + w * g.T @ g
            if i % preconditioning_compute_steps == 0:
                lr_root = _sym_power(left, -0.25, eps), _sym_power(right, -0.25, eps)
            p = lr_root[0] @ g @ lr_root[1]
        else:
            h = b2 * h + w * g * g
            p = g / np.sqrt(h)
        m = b1 * m + p
        theta = theta - lr_at(learning_rate, i) * m
        out.append(theta)
    return out
