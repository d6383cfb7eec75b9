"""Flow-matching samplers as pure functions of tensors, a velocity function, a sigma grid and an
explicit `torch.Generator`: the shifted schedule, the Euler ODE sampler, and the SDE sampler with
Gaussian log-probabilities that GRPO trains on.
"""

from vpt.sampling.ode import (
    StepCallback,
    VelocityFn,
    classifier_free_guidance,
    euler_step,
    sample_ode,
    with_first_frame,
)
from vpt.sampling.schedule import (
    SigmaLike,
    TimestepDensity,
    TimestepSamplingConfig,
    per_sample_sigmas,
    sample_training_sigmas,
    sampling_sigmas,
    shift_sigmas,
    sigma_grid_values,
)
from vpt.sampling.sde import (
    NoiseSchedule,
    SDEConfig,
    SDEStep,
    SDETrajectory,
    SDETransition,
    diffusion_coefficient,
    gaussian_log_prob,
    sample_sde,
    sde_step,
)

__all__ = [
    "NoiseSchedule",
    "SDEConfig",
    "SDEStep",
    "SDETrajectory",
    "SDETransition",
    "SigmaLike",
    "StepCallback",
    "TimestepDensity",
    "TimestepSamplingConfig",
    "VelocityFn",
    "classifier_free_guidance",
    "diffusion_coefficient",
    "euler_step",
    "gaussian_log_prob",
    "per_sample_sigmas",
    "sample_ode",
    "sample_sde",
    "sample_training_sigmas",
    "sampling_sigmas",
    "sde_step",
    "shift_sigmas",
    "sigma_grid_values",
    "with_first_frame",
]
