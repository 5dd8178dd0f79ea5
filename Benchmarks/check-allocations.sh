#!/usr/bin/env bash
# Measures mallocs of the "Allocations ..." benchmarks and checks them
# against Thresholds/ (p90 per sample of 1000 iterations): the parsers must
# allocate nothing; the control must allocate at least once per iteration,
# or the counter is not working and the zeros prove nothing.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
swift package --allow-writing-to-package-directory benchmark thresholds update \
  --filter "Allocations.*" --path "$out" --no-progress >"$out/run.log" 2>&1 \
  || { cat "$out/run.log" >&2; exit 1; }
python3 - "$out" <<'PY'
import json, os, sys
measured_dir = sys.argv[1]
failed = False
for name in sorted(os.listdir("Thresholds")):
    expected = json.load(open(os.path.join("Thresholds", name)))["mallocCountTotal"]
    path = os.path.join(measured_dir, name)
    if not os.path.exists(path):
        print(f"bench-check: {name}: not measured"); failed = True; continue
    got = json.load(open(path))["mallocCountTotal"]
    control = "control" in name
    ok = got >= expected if control else got <= expected
    print(f"bench-check: {name[:-9]}: mallocs per 1000 iterations {got} "
          f"({'at least' if control else 'at most'} {expected}) {'ok' if ok else 'FAILED'}")
    failed |= not ok
sys.exit(1 if failed else 0)
PY
