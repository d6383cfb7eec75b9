"""The text side of the text-alignment reward: MiniLM token states + mask, attention pooling with
known answers, and the sentence-embedding (mean-pooled) models that shipped first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from online_rl.triton_dev_server import TritonDevServer
from online_rl.triton_reward import TritonReward
from tests.rewards.conftest import TINY_CONFIGS, TINY_MEAN_TEXT_ALIGNMENT
from tests.tiny_models import minilm
from vpt.rewards.learned import OnnxReward, PromptEmbedder, TorchReward
from vpt.rewards.model_files import load_reward_model, save_reward_model
from vpt.rewards.networks import AttentionTextPool, TextAlignmentModel, build_reward_model
from vpt.rewards.onnx_export import export_onnx, input_specs, write_triton_repository
from vpt.rewards.reward_set import TritonEndpointConfig

PROMPTS = ["a red circle moving left", "a large blue square moving up slowly over white", "x"]


def test_token_states_match_the_text_encoder_and_the_sentence_embedding(
    embedder: PromptEmbedder,
) -> None:
    encoded = embedder.embed_tokens(PROMPTS, 20)
    assert encoded.states.shape == (3, 20, 384) and encoded.mask.shape == (3, 20)
    lengths = [len(minilm().tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert encoded.mask.sum(axis=1).tolist() == lengths
    reference = minilm().encode(PROMPTS).numpy()  # zero-padded to max_length = 16
    np.testing.assert_allclose(encoded.states[:, :16], reference, atol=1e-5)
    assert not encoded.states[:, 16:].any()
    for row, length in enumerate(lengths):
        mean = encoded.states[row, :length].mean(axis=0)
        np.testing.assert_allclose(
            embedder.embed(PROMPTS)[row], mean / np.linalg.norm(mean), atol=1e-5
        )
    with pytest.raises(ValueError, match=r"cannot pad prompts to 8 tokens.*keeps up to 16"):
        embedder.embed_tokens(PROMPTS, 8)


def test_attention_pool_of_one_token_is_its_value_for_every_query() -> None:
    torch.manual_seed(0)
    pool = AttentionTextPool(TINY_CONFIGS["text_alignment"]).eval()
    tokens = torch.randn(2, 5, 384)
    mask = torch.tensor([[1.0, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        pooled = pool(tokens, mask).reshape(2, 2, 8)  # (batch, queries, width)
        value = pool.values(pool.tokens(tokens[0, 0]))
    torch.testing.assert_close(pooled[0], value.expand(2, 8), atol=1e-6, rtol=0)
    assert not torch.allclose(pooled[1, 0], pooled[1, 1])  # two queries read different mixes


def test_attention_scores_ignore_padding_and_what_it_holds() -> None:
    torch.manual_seed(1)
    model = build_reward_model(TINY_CONFIGS["text_alignment"]).eval()
    assert isinstance(model, TextAlignmentModel)
    tokens = torch.randn(2, 6, 384)
    mask = torch.tensor([[1.0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    padded = torch.cat([tokens, torch.randn(2, 10, 384)], dim=1)  # garbage in the padding
    with torch.no_grad():
        short = model.embed_text(tokens * mask[..., None], mask)
        long = model.embed_text(padded, torch.cat([mask, torch.zeros(2, 10)], dim=1))
        with pytest.raises(ValueError, match=r"token states \(B, L, T\) and a mask"):
            model.embed_text(tokens[:, 0])
    torch.testing.assert_close(short, long, atol=1e-6, rtol=0)


def test_direction_words_change_the_score_of_an_attention_model(
    tiny_models_dir: Path, embedder: PromptEmbedder, world_batch: tuple[np.ndarray, list[str]]
) -> None:
    reward = OnnxReward.from_loaded(load_reward_model(tiny_models_dir / "text_alignment"), embedder)
    videos = np.repeat(world_batch[0][:1], 2, axis=0)
    scores = reward.score(videos, ["a red circle moving left", "a red circle moving right"])
    assert scores[0] != scores[1]


def test_mean_pooled_models_still_export_serve_and_agree(
    tmp_path: Path, embedder: PromptEmbedder, world_batch: tuple[np.ndarray, list[str]]
) -> None:
    torch.manual_seed(3)
    model = build_reward_model(TINY_MEAN_TEXT_ALIGNMENT).eval()
    assert [spec.name for spec in input_specs(model.config)] == ["video", "text_embedding"]
    folder = tmp_path / "models" / "text_alignment"
    save_reward_model(
        model,
        folder,
        name="text_alignment",
        version="tiny-test",
        recipe={},
        steps=0,
        metrics={},
        onnx_bytes=export_onnx(model),
    )
    loaded = load_reward_model(folder)
    videos, prompts = world_batch
    expected = TorchReward(loaded, embedder).score(videos, prompts)
    assert np.ptp(expected) > 1e-6
    local = OnnxReward.from_loaded(loaded, embedder).score(videos, prompts)
    np.testing.assert_allclose(local, expected, atol=1e-5, rtol=0)
    write_triton_repository(tmp_path / "models", tmp_path / "triton")
    with TritonDevServer(tmp_path / "triton") as server:
        remote = TritonReward(
            "text_alignment", TritonEndpointConfig(url=server.url, timeout_s=5.0), embedder
        )
        np.testing.assert_allclose(remote.score(videos, prompts), local, atol=1e-5, rtol=0)
        remote.close()


def test_a_text_encoder_keeping_more_tokens_than_the_model_reads_is_refused(
    tiny_models_dir: Path,
) -> None:
    class LongEmbedder(PromptEmbedder):
        def __init__(self) -> None:
            super().__init__(minilm())
            self.max_length = 64

    with pytest.raises(ValueError, match=r"reads up to 32 prompt tokens.*keeps 64"):
        TorchReward(load_reward_model(tiny_models_dir / "text_alignment"), LongEmbedder())
