# syntax=docker/dockerfile:1
# The slo-scaler image the Helm chart runs (charts/slo-scaler, image.repository/tag):
#   docker build -t slo-scaler:0.1.0 .
# Two stages: the release binary is built with the workspace's pinned toolchain and
# lockfile; the runtime is distroless (glibc + libgcc, no shell, no package manager) and
# runs as the non-root user 65532 that the chart's securityContext expects.

ARG RUST_VERSION=1.90

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The gRPC code is generated at build time by protox (pure Rust): no protoc needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p slo-scaler \
    && install -D -m 0755 target/release/slo-scaler /out/slo-scaler

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="slo-scaler" \
      org.opencontainers.image.description="SLO-driven autoscaler for LLM serving: a KEDA external scaler" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/slo-scaler /usr/local/bin/slo-scaler
USER 65532:65532
# gRPC (KEDA) and HTTP (/metrics, /healthz, /readyz, /models), as the chart's ports.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/slo-scaler"]
CMD ["serve"]
