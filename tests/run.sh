#!/bin/sh
# The whole test suite, from a fresh Debian machine: installs what is missing,
# builds three ways and runs
#   build/       every suite (unit, concurrent, mount)
#   build-asan/  the unit suite under AddressSanitizer + UBSan
#   build-tsan/  the concurrent suite under ThreadSanitizer
# Exit status: non-zero if any test failed.
set -eu
cd "$(dirname "$0")/.."
tests/setup.sh all

# abort_on_error everywhere: a report then ends in SIGABRT, whose handler
# (tests/brtest.h) removes the test's temporary directory; by default UBSan
# and TSan _exit() and left a 128 MiB image behind.
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1
meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 || status=1
# TSan's shadow memory needs a classic address space layout on kernels with
# high mmap randomisation: run it with ASLR off (setarch -R).
BR_TEST_SCALE=10 setarch "$(uname -m)" -R meson test -C build-tsan --suite concurrent \
	--print-errorlogs --num-processes 2 || status=1

if [ $status = 0 ]; then echo "tests/run.sh: all suites passed"; else echo "tests/run.sh: FAILED"; fi
exit $status
