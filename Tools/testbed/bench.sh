#!/usr/bin/env bash
# The throughput testbed (issue 5): gen -> fwd -> sink over veth, the
# three-namespace topology of ../shared/bench/anchors/veth_topo.sh, trafgen
# on CPU 0 as the generator, and in the middle, in turn and in the same run:
#   dgw     `dgw run`, one worker on CPU 1. Its static binding makes every
#           frame (the anchors' own trafgen.cfg: from 2001:db8:1::1, MAC
#           02:..:01, to the fwd MAC 02:..:02) an MN's uplink from a prefix
#           anchored at 2001:db8:ff::1 behind the sink: each one is
#           encapsulated IPv6-in-IPv6 (+40 bytes) toward it;
#   kernel  Linux IPv6 forwarding (the anchors' kernel_forward.sh);
#   testpmd DPDK testpmd, af_packet PMD, MAC forward (testpmd_forward.sh).
#
# Each of the three runs twice, once per place where the sink's receive
# processing runs (the "sink" field):
#   sender  the anchors' topology as it is. A veth transmit runs the
#           receiver's softirq on the sending CPU, so whoever sends to the
#           sink also pays for the sink's IPv6 stack (a route look-up and an
#           ICMPv6 error per frame): the kernel's forwarding on CPU 0, but
#           dgw's and testpmd's own CPU 1, where a forwarder on its own
#           machine would not.
#   cpu0    the same, with RPS on the sink's interface: its receive
#           processing runs on CPU 0, with the generator, as a sink on a
#           machine of its own would not take the forwarder's CPU. (The
#           anchors' scripts run unchanged, from a copy of the directory
#           whose veth_topo.sh calls the anchors' one, then sets rps_cpus.)
#
# One JSON line per system and sink: {"system","sink","offered_pps",
# "delivered_pps","loss"}; dgw's also with the frames it lost and where
# (its own counters: receive_ring_full, transmit_failed), its CPU time per
# delivered packet, how busy its core was, and its ratios to the others.
# dgw's offered count is trafgen's own (not the generator interface's,
# which also counts the gen namespace's kernel's few Router Solicitations).
# usage (root): Tools/testbed/bench.sh [SECONDS]   installs netsniff-ng and dpdk-dev if missing
#        SINKS="cpu0" Tools/testbed/bench.sh       one placement only
set -euo pipefail
cd "$(dirname "$0")/../.."
anchors=$(realpath "${ANCHORS:-../shared/bench/anchors}")
DUR=${1:-6}
SINKS=${SINKS:-sender cpu0}
[ "$(id -u)" = 0 ] || { echo "testbed: needs root (network namespaces, AF_PACKET)" >&2; exit 1; }
need=""
command -v trafgen >/dev/null || need="$need netsniff-ng"
command -v dpdk-testpmd >/dev/null || need="$need dpdk-dev"
if [ -n "$need" ]; then
  echo "testbed: installing$need" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
swift build -c release --product dgw >/dev/null
dgw=$(swift build -c release --show-bin-path)/dgw
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  (cd "$anchors" && ./veth_topo.sh down)
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/gw.yaml" <<'YAML'
name: testbed
address: 2001:db8:ff::fe
access: { interface: anc-f0 }
core: { interface: anc-f1, prefix: 2001:db8:ff::/64 }
static_bindings:
  - { mn: "02:00:00:00:00:01", prefix: 2001:db8:1::/64, anchor: 2001:db8:ff::1, serving: self, dlif_mac: "02:00:00:00:00:02" }
neighbors:
  - { address: 2001:db8:ff::1, mac: "02:00:00:00:00:04" }
YAML

# The anchors' directory for a sink placement: the anchors' own, or a copy
# whose veth_topo.sh brings the same topology up and then moves the sink's
# receive processing to CPU 0.
mkdir "$work/cpu0"
cp "$anchors"/kernel_forward.sh "$anchors"/testpmd_forward.sh "$anchors"/trafgen.cfg "$work/cpu0/"
cat > "$work/cpu0/veth_topo.sh" <<EOF
#!/bin/bash
set -e
"$anchors/veth_topo.sh" "\$@"
[ "\$1" = up ] && ip netns exec anc-sink sh -c 'echo 1 > /sys/class/net/anc-s0/queues/rx-0/rps_cpus'
exit 0
EOF
chmod +x "$work/cpu0/veth_topo.sh"
dir_for() { if [ "$1" = cpu0 ]; then echo "$work/cpu0"; else echo "$anchors"; fi; }

stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
summary() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$work/dgw.out" "$1"; }

# dgw between gen and sink; sets the dgw_* variables.
run_dgw() {
  local dir=$1
  (cd "$dir" && ./veth_topo.sh down && ./veth_topo.sh up)
  ip netns exec anc-fwd taskset -c 1 "$dgw" run --config "$work/gw.yaml" >"$work/dgw.out" 2>"$work/dgw.err" &
  pid=$!
  for _ in $(seq 100); do grep -q "forwarding between" "$work/dgw.err" && break; sleep 0.1; done
  grep -q "forwarding between" "$work/dgw.err" || { cat "$work/dgw.err" >&2; exit 1; }
  sleep 1
  ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
  local k0 k1 c0 c1 sent
  k0=$(stat anc-sink anc-s0 rx_packets); c0=$(ticks)
  ip netns exec anc-gen timeout "$DUR" taskset -c 0 trafgen --dev anc-g0 --conf "$dir/trafgen.cfg" --cpus 1 >"$work/trafgen.out" 2>&1 || true
  sent=$(tr '\r' '\n' <"$work/trafgen.out" | sed -n 's/^[^0-9]*\([0-9]*\) packets outgoing.*/\1/p' | head -1)
  sleep 0.2
  k1=$(stat anc-sink anc-s0 rx_packets); c1=$(ticks)
  kill -TERM "$pid"; wait "$pid" || { cat "$work/dgw.err" >&2; exit 1; }
  pid=""
  if [ -z "$sent" ]; then
    # trafgen gave up (it sometimes stops on EAGAIN from its own ring): no measurement.
    echo "testbed: trafgen stopped early:" >&2; grep -v "system socket memory" "$work/trafgen.out" >&2 || true
    (cd "$dir" && ./veth_topo.sh down)
    return 1
  fi
  local hz; hz=$(getconf CLK_TCK)
  dgw_sent=$sent; dgw_received=$((k1 - k0))
  dgw_offered=$(( sent / DUR )); dgw_delivered=$(( (k1 - k0) / DUR ))
  dgw_cpu_ns=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n=$((k1 - k0)) 'BEGIN { printf "%.0f", (n > 0 ? t * 1e9 / hz / n : 0) }')
  dgw_busy=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v d="$DUR" 'BEGIN { printf "%.3f", t / hz / (d + 0.2) }')
  dgw_ring=$(summary 'd["drops"].get("receive_ring_full", 0)')
  dgw_txfail=$(summary 'd["transmit_failed"]')
  (cd "$dir" && ./veth_topo.sh down)
}

# An anchor's figures; run again (up to three times) when its trafgen gave
# up early, which the anchors' scripts do not check: a rate under 1,000
# frames a second is that, not a measurement.
anchor() {
  local out try
  for try in 1 2 3; do
    out=$(cd "$1" && DUR=$DUR bash "$2" 2>/dev/null | tail -1)
    [ "$(echo "$out" | field sent_pps)" -ge 1000 ] 2>/dev/null && break
    echo "testbed: $2: the generator stopped early ($out), again" >&2
  done
  echo "$out"
}

line() {  # system sink offered delivered [extra json [loss; default from the rates]]
  awk -v s="$1" -v k="$2" -v o="$3" -v d="$4" -v x="${5:-}" -v l="${6:-}" 'BEGIN {
    if (l == "") l = (o > 0 ? 1 - d / o : 0)
    printf "{\"system\":\"%s\",\"sink\":\"%s\",\"offered_pps\":%d,\"delivered_pps\":%d,\"loss\":%.6f%s}\n", s, k, o, d, l, x }'
}

for sink in $SINKS; do
  dir=$(dir_for "$sink")
  tries=0
  until run_dgw "$dir"; do
    tries=$((tries + 1))
    [ "$tries" -lt 3 ] || { echo "testbed: no dgw measurement in 3 tries" >&2; exit 1; }
  done
  kernel=$(anchor "$dir" kernel_forward.sh)
  testpmd=$(anchor "$dir" testpmd_forward.sh)
  k_d=$(echo "$kernel" | field delivered_pps); t_d=$(echo "$testpmd" | field delivered_pps)
  extra=$(awk -v sent="$dgw_sent" -v got="$dgw_received" -v ring="$dgw_ring" -v tx="$dgw_txfail" -v c="$dgw_cpu_ns" -v b="$dgw_busy" \
              -v d="$dgw_delivered" -v k="$k_d" -v t="$t_d" 'BEGIN {
    printf ",\"frames_sent\":%d,\"frames_delivered\":%d,\"frames_lost\":%d,\"receive_ring_full\":%d,\"transmit_failed\":%d", sent, got, sent - got, ring, tx
    printf ",\"cpu_ns_per_packet\":%s,\"cpu_busy\":%s,\"vs_kernel\":%.3f,\"vs_testpmd\":%.3f", c, b, (k > 0 ? d / k : 0), (t > 0 ? d / t : 0) }')
  # dgw's loss from the frame counts, not the rounded rates.
  line dgw "$sink" "$dgw_offered" "$dgw_delivered" "$extra" \
    "$(awk -v s="$dgw_sent" -v g="$dgw_received" 'BEGIN { printf "%.9f", (s > 0 ? 1 - g / s : 0) }')"
  line kernel "$sink" "$(echo "$kernel" | field sent_pps)" "$k_d"
  line testpmd "$sink" "$(echo "$testpmd" | field sent_pps)" "$t_d"
done
