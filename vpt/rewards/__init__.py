"""Training rewards: videos + prompts in, one score per video out (never the judge).

Modules: `base` (the `Reward` protocol, input checks, advantage-level combination),
`networks` (the learned reward models), `learned` (their torch and onnxruntime adapters),
`structural` (rule-based constraints), `model_files` (verified reward model folders; the
shipped ones), `onnx_export` (ONNX graphs and the Triton model repository), `reward_set`
(`RewardSetConfig` and the builder). The Triton client lives in `online_rl.triton_reward`.
"""

from vpt.rewards.base import (
    Reward,
    RewardInputError,
    check_reward_inputs,
    combine_rewards,
    normalise_within_groups,
)

__all__ = [
    "Reward",
    "RewardInputError",
    "check_reward_inputs",
    "combine_rewards",
    "normalise_within_groups",
]
