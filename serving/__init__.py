"""The vpt generation service: streaming gRPC API, client SDK, events, metrics, weight hot-swap.

Layout: `protos` (generated wire types, built by `build_protos`), `config` (the YAML config),
`validation`, `models` (resident versions, hot-swap), `jobs` (admission, worker threads,
finalisation), `generation_service` / `admin_service` (gRPC servicers; status codes live there),
`auth`, `artifacts`, `store` (generation records), `events` (event bus: SQLite and Kafka),
`enhancement` (prompt-enhancer hook, OpenAI/vLLM client), `metrics`, `server` (wiring, drain),
`client` (SDK), `cli` (`vpt serve`, `vpt client`). See docs/serving.md.
"""
