# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own cached layer, the runtime image
# holds only the binary and runs as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# 1. Dependencies only (cached until Cargo.toml/Cargo.lock change).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src examples tests/it benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && echo 'fn main() {}' > examples/fake_lke.rs \
    && echo 'fn main() {}' > tests/it/main.rs \
    && cargo build --release --locked --bin stsgate \
    && rm -rf src examples tests
# 2. The application.
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
COPY examples ./examples
COPY tests ./tests
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin stsgate

FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 stsgate \
    && useradd --system --uid 10001 --gid stsgate --home-dir /var/lib/stsgate --create-home stsgate
COPY --from=build /src/target/release/stsgate /usr/local/bin/stsgate
COPY config/example.toml /etc/stsgate/example.toml
WORKDIR /var/lib/stsgate
USER 10001:10001
ENV STSGATE_SERVER__LISTEN=0.0.0.0:8080 \
    STSGATE_DATABASE__URL=sqlite:///var/lib/stsgate/stsgate.db?mode=rwc
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["stsgate", "healthcheck"]
ENTRYPOINT ["stsgate"]
CMD ["serve"]
