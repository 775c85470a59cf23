# syntax=docker/dockerfile:1
# The `kokuban` server with the web app built in: a builder stage compiles the browser app with
# Trunk and then the release binary (which embeds `dist/`); the runtime image holds only that
# one binary. Used by docker-compose.yml for every node of the cluster.

FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The tools that build the web app, at the versions the repository pins, installed before the
# sources are copied so that this layer is cached across source changes.
#  - wasm-opt comes from npm's binaryen (Debian's is too old for Trunk.toml's `version_132`);
#  - Trunk 0.21.14 is the last release that builds on Rust 1.95;
#  - wasm-bindgen-cli must be exactly the wasm-bindgen of Cargo.lock (the CLI and the library
#    share a private ABI), so its version is read from there, not written twice. It installs
#    without --locked: its own lock pins a version the registry no longer has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && npm install --global binaryen@132 \
 && rustup target add wasm32-unknown-unknown \
 && cargo install trunk --version 0.21.14 --locked
COPY Cargo.lock ./
RUN version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock) \
 && test -n "$version" \
 && cargo install wasm-bindgen-cli --version "$version"

COPY . .
# Trunk.toml sets `offline = true`: it uses the tools above and never downloads its own.
RUN trunk build --release --offline \
 && cargo build --release --locked -p kokuban-server --bin kokuban

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin kokuban
COPY --from=builder /src/target/release/kokuban /usr/local/bin/kokuban
USER kokuban
# Inside a container the node must listen on every interface; in cluster mode nothing is kept
# on disk (the data directory only matters for a single node with a volume mounted there).
ENV KOKUBAN_LISTEN=0.0.0.0:8080 \
    KOKUBAN_DATA_DIR=/tmp/kokuban
EXPOSE 8080
ENTRYPOINT ["kokuban"]
