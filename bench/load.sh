#!/usr/bin/env bash
# The load benchmark (see examples/loadbench.rs): builds the server and the generator in
# release, then compares stsgate type 0 with a bare axum endpoint on SQLite and, when
# DATABASE_URL is set, PostgreSQL. Extra arguments go to the generator, e.g.
#   bench/load.sh --conns 64 --secs 3 --rounds 3 --variants sqlite,postgres
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin stsgate --example loadbench
exec target/release/examples/loadbench --stsgate target/release/stsgate "$@"
