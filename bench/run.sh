#!/usr/bin/env bash
# Benchmark octo-budget against a generated Claude Code tree (and ccusage, unless --skip-peer).
#   bench/run.sh [--size-mb N] [--compare-mb M] [--seed S] [--payload-scale F] [--skip-peer] [--calls N] [--repeat N] [--keep] [--strict] [--no-build]
# CI smoke: bench/run.sh --size-mb 5 --skip-peer --calls 20
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
CACHE="$BENCH/.cache"
CCUSAGE_VERSION="20.0.24"

SIZE_MB=1024
SEED=1
ARMS=40
PAYLOAD_SCALE=1
CALLS=250
REPEAT=3
SKIP_PEER=0
KEEP=0
STRICT=0
BUILD=1
LABEL=""
COMPARE_MB=""   # default: 256 when --size-mb is 1024, else none

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --compare-mb) COMPARE_MB="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --arms) ARMS="$2"; shift 2 ;;
    --payload-scale) PAYLOAD_SCALE="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --skip-peer) SKIP_PEER=1; shift ;;
    --keep) KEEP=1; shift ;;
    --strict) STRICT=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --label) LABEL="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
  esac
done

mkdir -p "$CACHE" "$BENCH/out"
PY="${PYTHON:-python3}"

# 1. build. .cargo/config.toml builds for the host's target by name (a
# static binary on Linux/glibc), so the binary is under target/<host>/release.
if [[ $BUILD -eq 1 ]]; then
  echo "== cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
fi
HOST="$(rustc -vV | sed -n 's/^host: //p')"
BIN="$ROOT/target/$HOST/release/octo-budget"
[[ -x "$BIN" ]] || BIN="$ROOT/target/release/octo-budget"
[[ -x "$BIN" ]] || { echo "run.sh: no release binary under $ROOT/target" >&2; exit 1; }

# 2. trees (reused when complete and made by the current generator version)
tree_for() {  # size in MiB -> path; generated when missing or stale
  local t="$CACHE/tree-$1-${SEED}"
  [[ "$ARMS" != 40 ]] && t="${t}-a${ARMS}"
  [[ "$PAYLOAD_SCALE" != 1 ]] && t="${t}-p${PAYLOAD_SCALE}"
  if ! "$PY" "$BENCH/gen_tree.py" --is-current "$t"; then
    echo "== generating $t ($1 MiB, seed $SEED)" >&2
    rm -rf "$t"
    "$PY" "$BENCH/gen_tree.py" --out "$t" --size-mb "$1" --seed "$SEED" --arms "$ARMS" --payload-scale "$PAYLOAD_SCALE" >&2
  else
    echo "== reusing $t" >&2
  fi
  echo "$t"
}
TREE="$(tree_for "$SIZE_MB")"
[[ -z "$COMPARE_MB" && "$SIZE_MB" == 1024 ]] && COMPARE_MB=256
COMPARE_TREE=""
[[ -n "$COMPARE_MB" && "$COMPARE_MB" != 0 ]] && COMPARE_TREE="$(tree_for "$COMPARE_MB")"

# 3. peer: ccusage, installed into bench/.cache/ccusage when missing
CCUSAGE=""
if [[ $SKIP_PEER -eq 0 ]]; then
  CCDIR="$CACHE/ccusage"
  CCBIN="$CCDIR/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"
  if [[ ! -f "$CCBIN" ]] || ! grep -q "\"version\": \"$CCUSAGE_VERSION\"" "$CCDIR/node_modules/ccusage/package.json" 2>/dev/null; then
    echo "== installing ccusage@$CCUSAGE_VERSION into $CCDIR"
    mkdir -p "$CCDIR"
    [[ -f "$CCDIR/package.json" ]] || echo '{"name":"octo-budget-bench-peer","private":true}' > "$CCDIR/package.json"
    (cd "$CCDIR" && npm install --no-audit --no-fund --loglevel=error "ccusage@$CCUSAGE_VERSION" >/dev/null)
  fi
  chmod +x "$CCBIN"   # npm leaves the native binary without its run bit
  CCUSAGE="$CCBIN"
fi

# 4. measure
ARGS=(--tree "$TREE" --bin "$BIN" --calls "$CALLS" --repeat "$REPEAT" --repo "$ROOT" --out-dir "$BENCH/out")
[[ -n "$CCUSAGE" ]] && ARGS+=(--ccusage "$CCUSAGE")
[[ $KEEP -eq 1 ]] && ARGS+=(--keep)
[[ $STRICT -eq 1 ]] && ARGS+=(--strict)
[[ -n "$LABEL" ]] && ARGS+=(--label "$LABEL")
[[ -n "$COMPARE_TREE" ]] && ARGS+=(--compare-tree "$COMPARE_TREE")
exec "$PY" "$BENCH/measure.py" "${ARGS[@]}"
