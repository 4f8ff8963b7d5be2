"""The PyTorch baseline of W1: a plain eager training loop with ``torch.optim.Adam``.

What a user writes today for the same runs: the same data model (clipsim's mixing
matrices, fresh one-hot latents, unique features, caption masks and noise drawn
with ``torch`` every step), linear encoders with L2-normalized outputs, the
symmetric CLIP loss through ``F.cross_entropy``, ``loss.backward()`` and
``opt.step()``. Random numbers come from torch's generator, so the runs are
statistically, not bitwise, the sweep's runs. The loop does not synchronize per
step (no ``loss.item()``), the favourable case for the baseline.

Needs the optional extra ``bench`` (``pip install -e ".[bench]"``); without torch the
benchmark skips this variant with ``MISSING``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

MISSING = ("torch is not installed: the PyTorch baseline of W1 is skipped "
           "(install the extra: pip install -e '.[bench]')")


def available() -> bool:
    """Whether torch can be imported."""
    return importlib.util.find_spec("torch") is not None


def version() -> str:
    """torch's version string."""
    import torch

    return torch.__version__


def num_threads() -> int:
    """torch's intra-op thread count."""
    import torch

    return torch.get_num_threads()


class TorchLoop:
    """One W1 run at a time in PyTorch eager mode (linear encoders, one-hot latents).

    Args:
        cfg: a clipsim ``RunConfig`` (linear model, one-hot family, linear mixing);
            its world (mixing matrices) is clipsim's ``world_for(cfg)``.
        device: torch device for the parameters, the data and the generator
            (``"cpu"`` or ``"cuda"``); the loop synchronizes once, after the last step.
    """

    def __init__(self, cfg, device: str = "cpu") -> None:
        import torch

        from clipsim.train.loop import world_for

        if cfg.model.kind != "linear" or cfg.data.family != "onehot" or \
                cfg.data.mixing != "linear":
            raise ValueError("the torch baseline covers linear encoders on one-hot linear data")
        world = world_for(cfg)
        self.device = torch.device(device)
        t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy()).to(self.device)  # noqa: E731
        self.a_z, self.a_xi = t(world.shared_x), t(world.unique_x)
        self.b_z, self.b_zeta = t(world.shared_y), t(world.unique_y)
        self.cfg = cfg

    def _batch(self, gen) -> tuple[Any, Any]:
        import torch

        d = self.cfg.data
        b = self.cfg.train.batch_size
        dev = self.device
        labels = torch.randint(0, d.num_concepts, (b,), generator=gen, device=dev)
        z = torch.nn.functional.one_hot(labels, d.num_concepts).float()
        xi = d.image_unique_scale * torch.randn(b, d.image_unique_dim, generator=gen, device=dev)
        zeta = d.text_unique_scale * torch.randn(b, d.text_unique_dim, generator=gen, device=dev)
        mask = (torch.rand(b, d.num_concepts, generator=gen, device=dev)
                < 1.0 - d.omit_prob).float()
        x = z @ self.a_z.T + xi @ self.a_xi.T
        x = x + d.noise_scale * torch.randn(b, d.image_dim, generator=gen, device=dev)
        y = (mask * z) @ self.b_z.T + zeta @ self.b_zeta.T
        y = y + d.noise_scale * torch.randn(b, d.text_dim, generator=gen, device=dev)
        return x, y

    def train(self, run_cfg, steps: int | None = None) -> float:
        """Train one run (its seed, temperature and learning rate); returns the last loss.

        Args:
            run_cfg: the run's config (same static fields as the constructor's).
            steps: steps to run (default ``run_cfg.train.steps``).

        Returns:
            The final step's loss (one synchronization, after the loop).
        """
        import torch
        import torch.nn.functional as F

        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(int(run_cfg.seed))
        d, m = run_cfg.data, run_cfg.model
        scale = float(m.init_scale)
        w_img = torch.nn.Parameter(scale / d.image_dim ** 0.5 * torch.randn(
            m.embed_dim, d.image_dim, generator=gen, device=dev))
        w_txt = torch.nn.Parameter(scale / d.text_dim ** 0.5 * torch.randn(
            m.embed_dim, d.text_dim, generator=gen, device=dev))
        opt = torch.optim.Adam([w_img, w_txt], lr=float(run_cfg.train.learning_rate))
        tau = float(run_cfg.objective.temperature)
        labels = torch.arange(run_cfg.train.batch_size, device=dev)
        loss = torch.zeros((), device=dev)
        for _ in range(run_cfg.train.steps if steps is None else steps):
            x, y = self._batch(gen)
            za = F.normalize(x @ w_img.T, dim=-1)
            zb = F.normalize(y @ w_txt.T, dim=-1)
            logits = za @ zb.T / tau
            loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return float(loss.detach())

    def warmup(self, run_cfg) -> None:
        """A few steps, so one-time allocations stay out of the timings."""
        self.train(run_cfg, steps=5)
