# The two commands of the README are `make demo` and `make test`; the rest
# are what they are built from. Root is needed only to install packages
# (apt-get) and, in later issues, for network namespaces and AF_PACKET.

SHELL := /bin/bash
SWIFT ?= swift
APT_PACKAGES := libpcap-dev libyaml-dev tshark tcpdump iproute2 iputils-ping ethtool libjemalloc-dev clang pkg-config strace
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := wire decode config control

.PHONY: all build release test demo deps unit-test tsan-test fuzz fuzz-smoke bench bench-check compare-lpm testbed clean

all: build

# Installs whatever of APT_PACKAGES is missing, non-interactively.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing apt packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make: installing packages needs root (apt-get); run as root or install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

unit-test: deps
	$(SWIFT) test --disable-xctest

# The whole suite: unit and tshark tests, the concurrent table tests under
# Thread Sanitizer, a bounded fuzz run, and the allocation checks of the
# parsers and look-ups (package-benchmark, release build).
test: unit-test tsan-test fuzz-smoke bench-check

# Readers flat out against a churning writer, under Thread Sanitizer
# (a build folder of its own).
tsan-test: deps
	$(SWIFT) test --disable-xctest --sanitize=thread --scratch-path .build-tsan --filter "ConcurrencyTests|QSBRTests|WriteBehindTests"

# The handover scenario with real Linux hosts (issue 7): three gateways, a
# CN, a LIPA host and a Linux MN moved 1 -> 2 -> 3 -> 1 in network
# namespaces; a report, and demo-timeline.svg. Root: namespaces, AF_PACKET.
demo:
	@if [ "$$(id -u)" != 0 ]; then echo "make demo needs root (network namespaces, AF_PACKET, apt-get): run it as root, e.g. sudo make demo" >&2; exit 1; fi
	@$(MAKE) --no-print-directory deps
	$(SWIFT) build -c release --product dgw
	$(SWIFT) build -c release --product dgw-testbed
	.build/release/dgw-testbed scenario --svg demo-timeline.svg

# libFuzzer over the parsers and the control plane; FUZZ_SECONDS each (make fuzz FUZZ_SECONDS=600).
fuzz: deps
	Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: deps
	Fuzz/run.sh 15 $(FUZZ_TARGETS)

# Allocation and speed of the parsers (package-benchmark, release build).
bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress

# Fails if a parser or a look-up allocates (Benchmarks/Thresholds: none at all).
bench-check: deps
	Benchmarks/check-allocations.sh

# The HNP table against DPDK rte_lpm6 on the full workload (installs libdpdk-dev).
compare-lpm: deps
	Tools/compare-lpm.sh

# Live forwarding against kernel forwarding and DPDK testpmd on the anchors'
# veth topology (root; installs netsniff-ng and dpdk-dev).
testbed: deps
	Tools/testbed/bench.sh

clean:
	rm -rf .build .build-tsan Benchmarks/.build Fuzz/out
