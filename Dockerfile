# Multi-stage build of both binaries: llmops-api and llmops-worker.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The `dist` profile: release with link-time optimisation (see Cargo.toml).
RUN cargo build --profile dist --locked --bin llmops-api --bin llmops-worker

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/llmops llmops
COPY --from=build /src/target/dist/llmops-api /src/target/dist/llmops-worker /usr/local/bin/
USER llmops
WORKDIR /var/lib/llmops
ENV LLMOPS_LISTEN=0.0.0.0:4000
EXPOSE 4000
CMD ["llmops-api"]
