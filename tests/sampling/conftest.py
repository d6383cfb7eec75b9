"""Analytic flow-matching targets whose exact velocity field is known in closed form.

With x_sigma = (1 - sigma) x0 + sigma * noise and v = E[noise - x0 | x_sigma]:
- point mass x0 = c: noise = (x - (1 - sigma) c) / sigma, so v(x, sigma) = (x - c) / sigma and
  every Euler step lands exactly on the straight line to c;
- Gaussian x0 ~ N(m, tau^2) element-wise, a = 1 - sigma, V = a^2 tau^2 + sigma^2:
  v(x, sigma) = (sigma - a tau^2) (x - a m) / V - m, whose exact ODE flow maps noise z at
  sigma = 1 to m + tau * z at sigma = 0 (x_sigma = a m + sqrt(V) z).
"""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

VelocityFactory = Callable[..., Callable[[Tensor, Tensor], Tensor]]


def _column(sigma_per_sample: Tensor, x: Tensor) -> Tensor:
    return sigma_per_sample.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


@pytest.fixture
def point_mass_velocity() -> VelocityFactory:
    def make(target: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        def velocity(x: Tensor, sigma_per_sample: Tensor) -> Tensor:
            assert (
                sigma_per_sample.shape == (x.shape[0],) and sigma_per_sample.dtype == torch.float32
            )
            return (x - target) / _column(sigma_per_sample, x)

        return velocity

    return make


@pytest.fixture
def gaussian_velocity() -> VelocityFactory:
    def make(mean: float, std: float) -> Callable[[Tensor, Tensor], Tensor]:
        def velocity(x: Tensor, sigma_per_sample: Tensor) -> Tensor:
            sigma = _column(sigma_per_sample, x).double()
            keep = 1 - sigma
            variance = keep**2 * std**2 + sigma**2
            v = (sigma - keep * std**2) * (x.double() - keep * mean) / variance - mean
            return v.to(x.dtype)

        return velocity

    return make
