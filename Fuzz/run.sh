#!/usr/bin/env bash
# Builds and runs the libFuzzer targets over the parsers.
#   Fuzz/run.sh SECONDS [TARGET...]     targets: wire decode config control (default: all)
# Each target is the wire sources (and for decode, the dissector; for
# config, the configuration reader over libyaml; for control, the control
# plane fed event sequences) compiled into one module
# with -sanitize=fuzzer,address. Seeds: Fuzz/seeds (the frames of
# Samples/handover.pcapng), Fuzz/seeds-config (YAML); the corpus grows in
# Fuzz/out/corpus-*.
# A crash leaves its input in Fuzz/out/ and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}; shift || true
targets=("${@:-wire decode config control}")
mkdir -p Fuzz/out
# libFuzzer reports crashes itself; the Swift backtracer would only add noise.
export SWIFT_BACKTRACE=enable=no
flags=(-sanitize=fuzzer,address -parse-as-library -O -g)
# The wire layer as its own module, for targets that import it.
mkdir -p Fuzz/out/modules
swiftc "${flags[@]}" -module-name DGWWire -emit-module -emit-module-path Fuzz/out/modules/DGWWire.swiftmodule \
  -emit-library -static -o Fuzz/out/modules/libDGWWire.a Sources/DGWWire/*.swift >Fuzz/out/build.log 2>&1 \
  || { cat Fuzz/out/build.log >&2; exit 1; }
for target in ${targets[@]}; do
  case $target in
    wire) sources=(Sources/DGWWire/*.swift Fuzz/FuzzWire.swift); extra=() ;;
    decode) sources=(Sources/DGWInspect/*.swift Fuzz/FuzzDecode.swift)
            extra=(-I Fuzz/out/modules -L Fuzz/out/modules -lDGWWire) ;;
    config) sources=(Sources/DGWConfig/*.swift Fuzz/FuzzConfig.swift)
            extra=(-I Fuzz/out/modules -L Fuzz/out/modules -lDGWWire -I Sources/CYAML -lyaml) ;;
    control) sources=(Sources/DGWControl/*.swift Fuzz/FuzzControl.swift)
             extra=(-I Fuzz/out/modules -L Fuzz/out/modules -lDGWWire) ;;
    *) echo "unknown fuzz target $target" >&2; exit 2 ;;
  esac
  bin=Fuzz/out/fuzz-$target
  # (ld.gold warns about ASan's local symbols; the log keeps that noise.)
  swiftc "${flags[@]}" -module-name DGWFuzz_$target "${sources[@]}" "${extra[@]}" -o "$bin" \
    >>Fuzz/out/build.log 2>&1 || { grep -v "ld.gold: warning" Fuzz/out/build.log >&2; exit 1; }
  mkdir -p "Fuzz/out/corpus-$target"
  echo "fuzz: $target for ${seconds}s"
  status=0
  seeds=Fuzz/seeds; [ "$target" = config ] && seeds=Fuzz/seeds-config
  [ "$target" = control ] && seeds=Fuzz/seeds-control
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix=Fuzz/out/ \
    "Fuzz/out/corpus-$target" "$seeds" >"Fuzz/out/$target.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|Test unit written)" \
    "Fuzz/out/$target.log" || true
  if [ "$status" != 0 ]; then
    tail -40 "Fuzz/out/$target.log" >&2
    echo "fuzz: $target FAILED (status $status); inputs in Fuzz/out/" >&2
    exit 1
  fi
done
echo "fuzz: all targets ran clean"
