#!/usr/bin/env bash
# Our HNP table against DPDK rte_lpm6 and the C hash sketch, one run, same
# machine, same workload (../shared/bench/WORKLOAD.md), side by side.
#   Tools/compare-lpm.sh [HNPS] [LOOKUPS]     (defaults: the anchors' 1048576 16777216)
# Installs libdpdk-dev if missing (root). Builds dgw-bench in release.
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=${ANCHORS:-../shared/bench/anchors}
hnps=${1:-1048576}; lookups=${2:-16777216}
if ! pkg-config --exists libdpdk 2>/dev/null; then
  echo "installing libdpdk-dev..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdpdk-dev >/dev/null
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cc -O3 -march=native "$anchors/lpm6_dpdk.c" $(pkg-config --cflags --libs libdpdk) -o "$work/lpm6_dpdk"
cc -O3 -march=native "$anchors/lpm6_hash_limit.c" -o "$work/lpm6_hash"
swift build -c release --product dgw-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/dgw-bench

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }          # key=value lines of the anchors
jfield() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }     # our JSON line
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '%-7s %-16s %10s %12s %14s %16s\n' workload implementation Mlps ns/lookup inserts/s checksum
for kind in dense sparse; do
  d=$("$work/lpm6_dpdk" "$kind" "$hnps" "$lookups" 2>/dev/null | tail -1)
  h=$("$work/lpm6_hash" "$kind" "$hnps" "$lookups")
  o=$("$bench" lpm --workload "$kind" --routes "$hnps" --lookups "$lookups")
  for row in "rte_lpm6|$(echo "$d" | field Mlps)|$(echo "$d" | field ns_per_lookup)|$(echo "$d" | field inserts_per_s)|$(echo "$d" | field checksum)" \
             "c-hash-sketch|$(echo "$h" | field Mlps)|$(echo "$h" | field ns_per_lookup)|$(echo "$h" | field inserts_per_s)|$(echo "$h" | field checksum)" \
             "dgw|$(echo "$o" | jfield mlps)|$(echo "$o" | jfield ns_per_lookup)|$(echo "$o" | jfield inserts_per_s)|$(echo "$o" | jfield checksum)"; do
    IFS='|' read -r name mlps ns ins sum <<<"$row"
    printf '%-7s %-16s %10s %12s %14.0f %16s\n' "$kind" "$name" "$mlps" "$ns" "$ins" "$sum"
  done
  echo "$kind: dgw/rte_lpm6 lookups $(ratio "$(echo "$o" | jfield mlps)" "$(echo "$d" | field Mlps)")x," \
       "inserts $(ratio "$(echo "$o" | jfield inserts_per_s)" "$(echo "$d" | field inserts_per_s)")x;" \
       "table bytes $(echo "$o" | jfield bytes)"
  echo "$o"
done
for kind in dense sparse; do "$bench" lpm-churn --workload "$kind" --routes "$hnps"; done
