"""`build_enhancer`: an `EnhancerConfig` (e.g. a section of a service's YAML) -> a ready
`PromptEnhancer` with the backend it names."""

from __future__ import annotations

from enhancer.prompt_enhancer import EnhancerConfig, PromptEnhancer, RewriteBackend


def build_enhancer(config: EnhancerConfig) -> PromptEnhancer:
    """Load the embedded model (base + adapter) or connect the vLLM client, per `config`."""
    backend: RewriteBackend
    if config.backend == "vllm":
        from enhancer.vllm_backend import VLLMBackend

        backend = VLLMBackend(config.vllm, config.generation)
    else:
        from enhancer.embedded import EmbeddedBackend

        backend = EmbeddedBackend.load(config.base_model, config.adapter, config.generation)
    return PromptEnhancer(backend, config)
