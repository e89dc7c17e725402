#!/bin/bash
# Build the libFuzzer targets with clang (the project's compiler is gcc;
# this compiles the core sources the targets need directly) and run each
# for a bounded time.
#
#   tests/fuzz/run.sh [--time SECONDS-PER-TARGET] [--out DIR] [TARGET...]
#
# Targets: fuzz_super (superblock + checkpoint slot decoders), fuzz_log
# (log scan + record application on an empty map).  Default: both, 30 s
# each, output (binaries, crash artifacts) in build-fuzz/ under the repo.
# Each run starts from a temp copy of tests/fuzz/corpus/<target> (the
# committed seeds stay untouched); a crash, leak or property violation
# makes the script exit 1 and leaves the input in OUT/artifacts/.  Exit 77
# when clang or its libFuzzer runtime is missing.
#
# Long runs: tests/fuzz/run.sh --time 3600 fuzz_log
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TIME=30
OUT=$REPO/build-fuzz
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--time) TIME=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_super fuzz_log)

CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null || { echo "SKIP: clang not installed (packages clang, libclang-rt-14-dev)"; exit 77; }
mkdir -p "$OUT/artifacts" || exit 1
T=$(mktemp -d "${TMPDIR:-/tmp}/brfuzz.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$T/probe.c"
"$CLANG" -fsanitize=fuzzer "$T/probe.c" -o "$T/probe" 2>/dev/null ||
	{ echo "SKIP: $CLANG cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"; exit 77; }

CFLAGS=(-g -O1 -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-fno-omit-frame-pointer -I"$REPO/core" -Wall -Wno-unused-parameter)
# the whole core library: a new core module needs no change here
core_src=("$REPO"/core/*.c)

status=0
for t in "${targets[@]}"; do
	[ -f "$HERE/$t.c" ] || { echo "unknown target $t" >&2; exit 2; }
	echo "== build $t"
	"$CLANG" "${CFLAGS[@]}" -o "$OUT/$t" "$HERE/$t.c" "${core_src[@]}" -luring -luuid -lisal -lpthread ||
		{ echo "FAIL: build of $t"; status=1; continue; }
	mkdir -p "$T/$t"
	[ -d "$HERE/corpus/$t" ] && cp "$HERE/corpus/$t"/* "$T/$t/" 2>/dev/null
	echo "== run $t for ${TIME}s ($(ls "$T/$t" | wc -l) seeds)"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	if "$OUT/$t" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 \
		-max_len=262144 -print_final_stats=1 \
		-artifact_prefix="$OUT/artifacts/$t-" "$T/$t" >"$T/$t.log" 2>&1; then
		grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' "$T/$t.log" | sed 's/^/   /'
		echo "ok   - $t: no crash, leak or property violation in ${TIME}s"
	else
		echo "FAIL - $t: see below; reproduce with: $OUT/$t $OUT/artifacts/$t-<crash file>"
		grep -v '^#' "$T/$t.log" | tail -n 40 | sed 's/^/    /'
		ls "$OUT/artifacts/" | grep "^$t-" | sed 's/^/    artifact: /'
		status=1
	fi
done
exit $status
