"""vpt: post-training for text-to-video flow-matching models (SFT, GRPO RLHF, prompt
enhancement, autoregressive distillation) on a procedural ground-truth world."""

__version__ = "0.1.0"
