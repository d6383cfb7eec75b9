"""The online RL service. `triton_reward` scores rollouts through a Triton server (gRPC);
`triton_dev_server` is a Triton-protocol server backed by onnxruntime for tests and local runs."""
