"""Regenerates `torch_golden_lbfgs.npz`: `torch.optim.LBFGS` on the 2-D Rosenbrock function.

Run from the repository root (needs the CPU build of PyTorch, `pip install torch==2.13.0`,
and scipy)::

    python tests/golden/make_golden_lbfgs.py

The tests (`tests/test_lbfgs.py`) only read the .npz with NumPy; they never import torch.
Everything runs in float64 on f(x, y) = (1 - x)^2 + 100 (y - x^2)^2.

Fixed-step cases (`line_search_fn=None`, `max_iter=1`, so one L-BFGS iteration per `step()`):
PyTorch then steps by `lr * d` where `d` is the two-loop direction, except on the first step,
which it scales by `min(1, 1 / ||g||_1)`. gradtx scales that step by `min(1, 1 / ||g||_2)`;
both factors are 1 at the chosen starting points, whose gradients have norm <= 1. PyTorch
stores a curvature pair when `s . y > 1e-10`, gradtx when `s . y > eps * (y . y)`; the
trajectory is cut before the first step whose pair fails either test (`steps` is an upper
bound), so the recorded steps do not depend on that difference.

Strong-Wolfe case: one `step()` with `max_iter=500`, `line_search_fn="strong_wolfe"` from the
classical start (-1.2, 1). The line searches differ in their details, so only the outcome is
recorded: the iterations and function evaluations PyTorch needed and the point it reached.

A second reference, scipy's L-BFGS-B (no bounds, `maxcor=10`), on a 20-dimensional convex
quadratic 0.5 x.A x - b.x with condition number 100, from x = 0, for 40 iterations. Both
line searches (scipy's Moré-Thuente and the zoom search of gradtx) accept the unit step when
it passes their tests, and otherwise interpolate with a cubic, which on a quadratic lands on
the exact minimiser along the line; on this problem they choose the same steps, so the
iterates coincide (the two-loop recursion and the initial scaling being the same).

Keys (`<case>` is one of FIXED below)::

    meta/torch_version, meta/numpy_version                           (strings)
    <case>/x0            float64 (2,): the starting point
    <case>/traj          float64 (n, 2): the point after each step(), n <= steps
    <case>/hp/lr, <case>/hp/history_size                             float64 scalars
    wolfe/x0, wolfe/x    float64 (2,): start and end point
    wolfe/n_iter, wolfe/func_evals, wolfe/history_size               int64 scalars
    meta/scipy_version                                               string
    scipy_quadratic/a, scipy_quadratic/b   float64 (20, 20), (20,): the problem
    scipy_quadratic/traj                   float64 (40, 20): the iterates
"""

from __future__ import annotations

import pathlib

import numpy as np
import scipy.optimize
import torch

OUT = pathlib.Path(__file__).resolve().parent / "torch_golden_lbfgs.npz"
FIXED = {
    # name: (start, lr, history_size, steps)
    "fixed_a": ((0.8, 0.64), 1.0, 5, 30),
    "fixed_b": ((0.5, 0.25), 1.0, 3, 30),
}


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def rosenbrock_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


def fixed_case(start, lr, history_size, steps):
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [x],
        lr=lr,
        max_iter=1,
        history_size=history_size,
        line_search_fn=None,
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    traj, prev = [], None
    for _ in range(steps):
        point = x.detach().numpy().copy()
        grad = rosenbrock_grad(point)
        if prev is not None:
            # The pair this step() forms; stop before one that either library would skip.
            s, y = point - prev[0], grad - prev[1]
            if not (s @ y > 1e-10 and s @ y > np.finfo(np.float64).eps * (y @ y)):
                break
        prev = point, grad
        opt.step(closure)
        traj.append(x.detach().numpy().copy())
    return np.stack(traj)


def wolfe_case(start, history_size):
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=500,
        max_eval=2000,
        history_size=history_size,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=0.0,
    )

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state[x]
    return x.detach().numpy().copy(), state["n_iter"], state["func_evals"]


def quadratic_case(dim, condition, steps):
    """scipy's L-BFGS-B (no bounds, `maxcor=10`) on 0.5 x.A x - b.x from x = 0."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    a = (q * np.geomspace(1.0, condition, dim)) @ q.T
    b = rng.standard_normal(dim)
    traj = []
    scipy.optimize.minimize(
        lambda x: (0.5 * x @ a @ x - b @ x, a @ x - b),
        np.zeros(dim),
        jac=True,
        method="L-BFGS-B",
        options={"maxcor": 10, "maxiter": steps, "gtol": 0.0, "ftol": 0.0},
        callback=lambda x: traj.append(np.copy(x)),
    )
    assert len(traj) == steps, len(traj)
    return a, b, np.stack(traj)


def main() -> None:
    torch.set_default_dtype(torch.float64)
    data = {
        "meta/torch_version": np.array(torch.__version__),
        "meta/numpy_version": np.array(np.__version__),
    }
    for name, (start, lr, history_size, steps) in FIXED.items():
        data[f"{name}/x0"] = np.array(start, np.float64)
        data[f"{name}/traj"] = fixed_case(start, lr, history_size, steps)
        data[f"{name}/hp/lr"] = np.float64(lr)
        data[f"{name}/hp/history_size"] = np.float64(history_size)
    start = (-1.2, 1.0)
    x, n_iter, func_evals = wolfe_case(start, 10)
    data["wolfe/x0"] = np.array(start, np.float64)
    data["wolfe/x"] = x
    data["wolfe/n_iter"] = np.int64(n_iter)
    data["wolfe/func_evals"] = np.int64(func_evals)
    data["wolfe/history_size"] = np.int64(10)
    a, b, traj = quadratic_case(20, 100.0, 40)
    data["meta/scipy_version"] = np.array(scipy.__version__)
    data["scipy_quadratic/a"], data["scipy_quadratic/b"] = a, b
    data["scipy_quadratic/traj"] = traj
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): torch {torch.__version__}")
    print(f"strong Wolfe: {n_iter} iterations, {func_evals} evaluations, x = {x}")


if __name__ == "__main__":
    main()
