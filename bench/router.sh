#!/usr/bin/env bash
# URL-prefix router lookup cost: runs the plain benchmark
# examples/router_bench.rs (`cargo run --release --example router_bench`),
# which times ~1M lookups per case in a table of 1 and of 10 000
# registrations, and prints its numbers as a Markdown table, with each
# 10 000-prefix case relative to the 1-prefix lookup.
#
#   bash bench/router.sh
#
# Env: ROUNDS (default 3: runs the example that many times and reports the
# median per case), CARGO_TARGET_DIR (respected). No servers, no network.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}

log "building examples/router_bench (cargo build --release --example router_bench)"
(cd "$REPO_DIR" && cargo build --release --quiet --example router_bench) >&2 ||
    die "cargo build --release --example router_bench failed"

# Each line of the example:
#   "<case, padded to 48>  <N> prefixes  <ns> ns/lookup  (<p>% matched)"
#   "normalize_path, 5-segment path  -  <ns> ns/call"
declare -A NS PREFIXES MATCHED UNIT
CASES=()
for ((r = 0; r < ROUNDS; r++)); do
    out=$(_raw_file router_bench)
    log "round $((r + 1))/$ROUNDS: cargo run --release --example router_bench"
    (cd "$REPO_DIR" && cargo run --release --quiet --example router_bench) >"$out" 2>&1 ||
        die "router_bench failed: $(tail -n 3 "$out")"
    cat "$out" >&2
    while IFS=$'\t' read -r name n ns unit matched; do
        [[ -n $name ]] || continue
        if [[ -z ${NS[$name]+x} ]]; then CASES+=("$name"); fi
        NS[$name]="${NS[$name]:-} $ns"
        PREFIXES[$name]=$n
        MATCHED[$name]=$matched
        UNIT[$name]=$unit
    done < <(sed -nE 's/^(.*[^ ]) +([0-9]+|-)( +prefixes)? +([0-9.]+) ns\/(lookup|call)( +\(([0-9]+)% matched\))?.*$/\1\t\2\t\4\t\5\t\7/p' "$out")
done
((${#CASES[@]})) || die "router_bench printed no results"

declare -A MED
for c in "${CASES[@]}"; do
    # shellcheck disable=SC2086
    MED[$c]=$(median ${NS[$c]})
done
base=""
for c in "${CASES[@]}"; do
    [[ ${PREFIXES[$c]} == 1 ]] && base=${MED[$c]} && break
done

echo
echo "## URL-prefix router: lookup cost"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);"
echo "\`cargo run --release --example router_bench\` (~1M lookups per case, plain \`Instant\` timing),"
echo "portshare $(cd "$REPO_DIR" && git describe --always --dirty 2>/dev/null || echo "?"); median of $ROUNDS run(s)."
echo
echo "| case | prefixes | ns | vs 1 prefix | matched |"
echo "| --- | ---: | ---: | ---: | ---: |"
for c in "${CASES[@]}"; do
    r="–"
    [[ ${PREFIXES[$c]} =~ ^[0-9]+$ && ${PREFIXES[$c]} != 1 && -n $base ]] && r="$(ratio "${MED[$c]}" "$base")×"
    m=${MATCHED[$c]:-}
    [[ -n $m ]] && m="$m %" || m="–"
    echo "| $c | ${PREFIXES[$c]/#-/–} | $(fmt_num "${MED[$c]}") ns/${UNIT[$c]} | $r | $m |"
done
