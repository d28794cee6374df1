"""Linear warmup + cosine decay with AdamW: the PyTorch recipe, written with gradtx.

The PyTorch version trains a `Linear(10, 1)` with AdamW and a `LambdaLR` schedule::

    max_lr = 3e-4
    warmup_steps = 1000
    total_steps = 10000

    model = torch.nn.Linear(10, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=0.01)

    def lr_lambda(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    # each step: loss.backward(); optimizer.step(); scheduler.step()

In gradtx the schedule is a pure function of the step number, passed to the optimizer as its
learning rate; there is no scheduler object to step::

    schedule = gradtx.warmup_cosine_decay_schedule(0.0, max_lr, warmup_steps, total_steps, 0.0)
    optimizer = gradtx.adamw(schedule, weight_decay=0.01)

Note that `decay_steps` (here `total_steps`) is the length of the whole schedule, warmup
included. The script fits the linear model to synthetic regression data with the whole loop
under `jax.lax.scan` (one compiled program, a few seconds on a CPU), prints the learning rate at
the milestones of the schedule and the final loss, and, if PyTorch is installed, compares the
schedule with `LambdaLR` step by step.

Run from the repository root::

    python examples/seed_cosine_warmup.py            # 10,000 steps, 1,000 of warmup
    python examples/seed_cosine_warmup.py --quick    # 1,000 steps, 100 of warmup
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

try:
    import gradtx
except ImportError:  # Not installed: use the checkout this script lives in.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import gradtx

MAX_LR = 3e-4
WEIGHT_DECAY = 0.01
IN_FEATURES, OUT_FEATURES = 10, 1
NUM_SAMPLES = 1024
NOISE_STD = 0.1


def lr_lambda_factory(warmup_steps: int, total_steps: int):
    """PyTorch's `LambdaLR` factor for linear warmup then cosine decay to 0."""

    def lr_lambda(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return lr_lambda


def make_data(key: jax.Array):
    """Synthetic regression data `y = x @ w_true + b_true + noise`, all from one key."""
    k_x, k_w, k_b, k_noise = jax.random.split(key, 4)
    x = jax.random.normal(k_x, (NUM_SAMPLES, IN_FEATURES))
    w_true = jax.random.uniform(k_w, (IN_FEATURES, OUT_FEATURES), minval=-1.0, maxval=1.0)
    b_true = jax.random.uniform(k_b, (OUT_FEATURES,), minval=-1.0, maxval=1.0)
    y = x @ w_true + b_true + NOISE_STD * jax.random.normal(k_noise, (NUM_SAMPLES, OUT_FEATURES))
    return x, y


def init_linear(key: jax.Array) -> dict[str, jax.Array]:
    """Like `torch.nn.Linear(10, 1)`: weight and bias uniform in +-1/sqrt(in_features)."""
    k_w, k_b = jax.random.split(key)
    bound = 1.0 / math.sqrt(IN_FEATURES)
    return {
        "w": jax.random.uniform(k_w, (IN_FEATURES, OUT_FEATURES), minval=-bound, maxval=bound),
        "b": jax.random.uniform(k_b, (OUT_FEATURES,), minval=-bound, maxval=bound),
    }


def mse(params, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def make_train(optimizer, total_steps: int):
    """A jitted function running all `total_steps` full-batch steps with `jax.lax.scan`."""

    def step(carry, _):
        params, opt_state, x, y = carry
        grads = jax.grad(mse)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, opt_state, x, y), None

    @jax.jit
    def train(params, opt_state, x, y):
        (params, opt_state, _, _), _ = jax.lax.scan(
            step, (params, opt_state, x, y), length=total_steps
        )
        return params, opt_state

    return train


def compare_with_torch(schedule, warmup_steps: int, total_steps: int) -> None:
    """Prints the largest difference between `schedule` and PyTorch's `LambdaLR`, if available."""
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping the comparison with LambdaLR")
        return

    # The learning rate torch uses for step k is `get_last_lr()` before the k-th scheduler step.
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=MAX_LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_factory(warmup_steps, total_steps))
    torch_lrs = np.empty(total_steps + 1)
    for k in range(total_steps + 1):
        torch_lrs[k] = sched.get_last_lr()[0]
        opt.step()  # a no-op without gradients; keeps the optimizer-then-scheduler order
        sched.step()

    ours = np.asarray(schedule(jnp.arange(total_steps + 1)), dtype=np.float64)
    diff = np.max(np.abs(ours - torch_lrs))
    print(
        f"torch {torch.__version__} LambdaLR vs gradtx, steps 0..{total_steps}: "
        f"max |difference| = {diff:.3g} (relative to max_lr: {diff / MAX_LR:.3g})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 steps with 100 of warmup (a smoke test)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the data and the init")
    args = parser.parse_args(argv)

    warmup_steps, total_steps = (100, 1000) if args.quick else (1000, 10000)

    schedule = gradtx.warmup_cosine_decay_schedule(0.0, MAX_LR, warmup_steps, total_steps, 0.0)
    optimizer = gradtx.adamw(schedule, weight_decay=WEIGHT_DECAY)

    # The optimizer's step counter starts at 0, so update t uses the learning rate schedule(t).
    print(f"max_lr={MAX_LR}, warmup_steps={warmup_steps}, total_steps={total_steps}")
    milestones = [
        0,
        warmup_steps // 2,
        warmup_steps,
        (warmup_steps + total_steps) // 2,
        total_steps,
    ]
    for step in milestones:
        print(f"  lr at step {step:6d}: {float(schedule(step)):.6e}")

    k_data, k_init = jax.random.split(jax.random.key(args.seed))
    x, y = make_data(k_data)
    params = init_linear(k_init)
    opt_state = optimizer.init(params)
    initial_loss = float(mse(params, x, y))

    train = make_train(optimizer, total_steps)
    start = time.perf_counter()
    params, opt_state = train(params, opt_state, x, y)
    final_loss = float(mse(params, x, y))  # waits for the result
    seconds = time.perf_counter() - start

    print(
        f"loss: {initial_loss:.4f} at init, {final_loss:.4f} after {total_steps} steps "
        f"(noise floor {NOISE_STD**2:.4f}); {seconds:.2f} s including compilation"
    )
    compare_with_torch(schedule, warmup_steps, total_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
