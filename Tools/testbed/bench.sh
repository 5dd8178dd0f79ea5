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
# One JSON line per system: {"system","offered_pps","delivered_pps","loss"},
# dgw's with its CPU time per delivered packet and its ratios to the others.
# usage (root): Tools/testbed/bench.sh [SECONDS]   installs netsniff-ng and dpdk-dev if missing
set -euo pipefail
cd "$(dirname "$0")/../.."
anchors=$(realpath "${ANCHORS:-../shared/bench/anchors}")
DUR=${1:-6}
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

(cd "$anchors" && ./veth_topo.sh down && ./veth_topo.sh up)
stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
ip netns exec anc-fwd taskset -c 1 "$dgw" run --config "$work/gw.yaml" >"$work/dgw.out" 2>"$work/dgw.err" &
pid=$!
for _ in $(seq 100); do grep -q "forwarding between" "$work/dgw.err" && break; sleep 0.1; done
grep -q "forwarding between" "$work/dgw.err" || { cat "$work/dgw.err" >&2; exit 1; }
sleep 1
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
g0=$(stat anc-gen anc-g0 tx_packets); k0=$(stat anc-sink anc-s0 rx_packets); c0=$(ticks)
ip netns exec anc-gen timeout "$DUR" taskset -c 0 trafgen --dev anc-g0 --conf "$anchors/trafgen.cfg" --cpus 1 >/dev/null 2>&1 || true
sleep 0.2
g1=$(stat anc-gen anc-g0 tx_packets); k1=$(stat anc-sink anc-s0 rx_packets); c1=$(ticks)
kill -TERM "$pid"; wait "$pid" || { cat "$work/dgw.err" >&2; exit 1; }
pid=""
hz=$(getconf CLK_TCK)
dgw_offered=$(( (g1 - g0) / DUR )); dgw_delivered=$(( (k1 - k0) / DUR ))
dgw_cpu_ns=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n=$((k1 - k0)) 'BEGIN { printf "%.0f", (n > 0 ? t * 1e9 / hz / n : 0) }')
(cd "$anchors" && ./veth_topo.sh down)

field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
kernel=$(cd "$anchors" && DUR=$DUR bash kernel_forward.sh 2>/dev/null | tail -1)
testpmd=$(cd "$anchors" && DUR=$DUR bash testpmd_forward.sh 2>/dev/null | tail -1)
line() {  # system offered delivered [extra json]
  awk -v s="$1" -v o="$2" -v d="$3" -v x="${4:-}" 'BEGIN {
    printf "{\"system\":\"%s\",\"offered_pps\":%d,\"delivered_pps\":%d,\"loss\":%.6f%s}\n", s, o, d, (o > 0 ? 1 - d / o : 0), x }'
}
k_d=$(echo "$kernel" | field delivered_pps); t_d=$(echo "$testpmd" | field delivered_pps)
ratios=$(awk -v d="$dgw_delivered" -v k="$k_d" -v t="$t_d" -v c="$dgw_cpu_ns" 'BEGIN {
  printf ",\"cpu_ns_per_packet\":%s,\"vs_kernel\":%.3f,\"vs_testpmd\":%.3f", c, (k > 0 ? d / k : 0), (t > 0 ? d / t : 0) }')
line dgw "$dgw_offered" "$dgw_delivered" "$ratios"
line kernel "$(echo "$kernel" | field sent_pps)" "$k_d"
line testpmd "$(echo "$testpmd" | field sent_pps)" "$t_d"
