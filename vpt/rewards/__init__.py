"""Training rewards: videos + prompts in, one score per video out (never the judge)."""

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
