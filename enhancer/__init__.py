"""The prompt enhancer service: an LLM that rewrites a user's prompt into one the generator
renders better (stage 3 of arXiv 2604.25427), behind one interface with two backends.

- `prompt_enhancer`: `PromptEnhancer.enhance(prompt) -> EnhancedPrompt`, timeouts, fallback.
- `intent`: format limits and intent preservation by the world parser.
- `embedded` / `vllm_backend`: transformers + peft in-process, or a vLLM OpenAI server (with
  LoRA adapter hot-swap); `vllm_server` starts one; `build` picks one from `EnhancerConfig`.
- `base_model`: SmolLM2-135M-Instruct, GGUF -> safetensors once; `sft`: LoRA SFT (stage 1).
- `evaluation`, `system`: intent-preservation reports and GSB with the enhancer in front.

Submodules are imported explicitly (`from enhancer.prompt_enhancer import PromptEnhancer`) so
that importing one backend never loads the other's dependencies.
"""
