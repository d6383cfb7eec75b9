"""The shipped reward models (vpt/assets/rewards): verified, small, backends agree, and they rank
known-answer renders of held-out attribute combinations the right way round."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vpt.eval.reference_renders import render_reference, strongest_defects
from vpt.rewards.learned import OnnxReward, TorchReward
from vpt.rewards.model_files import PACKAGED_REWARDS, load_reward_model
from vpt.rewards.networks import TextAlignmentModel
from vpt.rewards.reward_set import RewardSetConfig, build_reward_set
from vpt.training.reward_data import RewardDataConfig, draw_clip, stack_frames
from vpt.training.reward_quality import attribute_head_accuracy
from vpt.world import WorldConfig
from vpt.world.captions import detailed_caption
from vpt.world.defects import DefectKind, misdescribe
from vpt.world.splits import held_out_combinations
from vpt.world.vocabulary import AttributeName

WORLD = WorldConfig()
CASES = held_out_combinations()[::8][:16]


def _renders(kinds: tuple[DefectKind, ...] = ()) -> np.ndarray:
    defects = strongest_defects(kinds=kinds) if kinds else None
    return np.stack(
        [render_reference(a.to_prompt(), seed, WORLD, defects) for seed, a in enumerate(CASES)]
    )


@pytest.fixture(scope="module")
def shipped() -> dict[str, OnnxReward]:
    rewards = build_reward_set(RewardSetConfig())
    return {reward.name: reward for reward in rewards.rewards}  # type: ignore[misc]


def test_shipped_models_are_verified_small_and_backends_agree() -> None:
    total = sum(f.stat().st_size for f in PACKAGED_REWARDS.rglob("*") if f.is_file())
    assert total < 5_000_000
    videos = _renders((DefectKind.NOISE,))
    prompts = [detailed_caption(a, np.random.default_rng(0)).text for a in CASES]
    for name in ("visual_quality", "motion_quality", "text_alignment"):
        loaded = load_reward_model(PACKAGED_REWARDS / name)
        assert loaded.manifest is not None and loaded.manifest.stage == "reward"
        np.testing.assert_allclose(
            OnnxReward.from_loaded(loaded).score(videos, prompts),
            TorchReward(loaded).score(videos, prompts),
            atol=1e-5,
            rtol=0,
        )


@pytest.mark.parametrize(
    ("reward", "kinds"),
    [
        ("visual_quality", (DefectKind.BLUR,)),
        ("visual_quality", (DefectKind.NOISE,)),
        ("motion_quality", (DefectKind.FLICKER,)),
        ("motion_quality", (DefectKind.JITTER,)),
    ],
)
def test_quality_rewards_prefer_clean_renders(
    reward: str, kinds: tuple[DefectKind, ...], shipped: dict[str, OnnxReward]
) -> None:
    prompts = [""] * len(CASES)
    clean = shipped[reward].score(_renders(), prompts)
    damaged = shipped[reward].score(_renders(kinds), prompts)
    assert (clean > damaged).mean() >= 0.8
    assert clean.mean() > damaged.mean() + 0.2


def test_motion_quality_penalises_missing_frames(shipped: dict[str, OnnxReward]) -> None:
    data = replace(RewardDataConfig(), defect_fraction=0.0, missing_fraction=0.0)
    clean = stack_frames([draw_clip(data, 101, i, True) for i in range(16)])
    missing = stack_frames(
        [draw_clip(replace(data, missing_fraction=1.0), 101, i, True) for i in range(16)]
    )
    prompts = [""] * 16
    assert (
        shipped["motion_quality"].score(clean, prompts).mean()
        > shipped["motion_quality"].score(missing, prompts).mean() + 0.2
    )


def test_text_alignment_prefers_the_matching_caption(shipped: dict[str, OnnxReward]) -> None:
    videos = _renders()
    rng = np.random.default_rng(5)
    matching = [detailed_caption(a, rng).text for a in CASES]
    names = (AttributeName.COLOR, AttributeName.SHAPE, AttributeName.DIRECTION)
    wrong = [
        detailed_caption(misdescribe(a, names[i % 3], rng), rng).text for i, a in enumerate(CASES)
    ]
    reward = shipped["text_alignment"]
    assert (reward.score(videos, matching) > reward.score(videos, wrong)).mean() >= 0.75


def test_text_alignment_video_heads_read_colors_and_backgrounds() -> None:
    model = load_reward_model(PACKAGED_REWARDS / "text_alignment").model
    assert isinstance(model, TextAlignmentModel)
    accuracy = attribute_head_accuracy(model, RewardDataConfig(), 40)
    assert accuracy["video_head_accuracy_color"] >= 0.9
    assert accuracy["video_head_accuracy_background"] >= 0.9
