#!/usr/bin/env bash
# Mutation testing of the data plane's logic: cargo-mutants over src/relay,
# src/protocols and src/schedulers, one shard of the mutants (every 25th, so
# that every file is sampled; all 1 187 take far longer than a session), each
# mutant tested by the unit tests and the in-process end-to-end tests. Not the binary and third-party tests (they
# exercise the same code through tcpvsd and cost a link each) nor
# tests/allocations.rs (a performance guard that fails under this load).
#
#   cargo install cargo-mutants          # once
#   benches/mutants.sh [SHARD] [OUT]     # SHARD 0/25 (48 mutants) by default
#   TREE=/other/worktree benches/mutants.sh 0/25 /tmp/mutants-old
#
# Prints a line per missed or timed-out mutant; OUT/mutants.out/ has caught.txt,
# missed.txt, timeout.txt and unviable.txt. --no-shuffle keeps the order, so two
# trees (before and after a change) can be compared mutant by mutant.
set -euo pipefail
shard=${1:-0/25}
out=${2:-target/mutants}
tree=${TREE:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$tree"
# Without debug info the link of each mutant's test binaries is much faster.
export CARGO_PROFILE_DEV_DEBUG=0 CI=true
exec nice -n 15 cargo mutants --no-shuffle --sharding round-robin --shard "$shard" -j 1 --timeout 120 --build-timeout 600 \
  -f 'src/relay/**' -f 'src/protocols/**' -f 'src/schedulers/**' \
  -o "$out" \
  --cargo-test-arg=--lib --cargo-test-arg=--test=http_relay --cargo-test-arg=--test=smuggling \
  --cargo-test-arg=--test=rtsp --cargo-test-arg=--test=schedulers --cargo-test-arg=--test=locality
