# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own cached layer, the runtime image
# holds only the binary and runs as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# 1. Dependencies only (cached until Cargo.toml/Cargo.lock change): every target the
#    manifest names gets an empty stand-in so cargo accepts the manifest.
#    The workspace's fakes crate (a dev-dependency) needs only its manifest and a stand-in.
COPY Cargo.toml Cargo.lock ./
COPY fakes/Cargo.toml ./fakes/
RUN for f in src/main.rs src/lib.rs fakes/src/lib.rs $(sed -n 's/^path = "\(.*\)"$/\1/p' Cargo.toml); do \
        mkdir -p "$(dirname "$f")" && echo 'fn main() {}' > "$f"; \
    done \
    && cargo build --release --locked --bin stsgate \
    && rm -rf src examples tests benches fakes/src
# 2. The application.
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
COPY examples ./examples
COPY tests ./tests
COPY benches ./benches
COPY fakes ./fakes
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
