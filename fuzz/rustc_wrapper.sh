#!/usr/bin/env bash
# RUSTC_WRAPPER for fuzz builds on a recent nightly: rustix 0.37 (pulled in through lapin's
# async-io) probes whether `#![feature(rustc_attrs)]` compiles and, on nightly, then uses layout
# attributes that today's nightly no longer accepts. This wrapper makes that one probe fail (as
# on stable), so rustix builds as it does on stable; every other compilation is rustc's own.
rustc="$1"
shift
if [[ " $* " == *" --emit=metadata "* && " $* " == *" - "* ]]; then
  input=$(cat)
  [[ "$input" == *"feature(rustc_attrs)"* ]] && exit 1
  printf '%s\n' "$input" | exec "$rustc" "$@"
fi
exec "$rustc" "$@"
