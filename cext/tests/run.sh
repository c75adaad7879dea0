#!/usr/bin/env bash
# cext/tests/run.sh - build and run the C core's tests (no Python) in every
# configuration, and fail on any failed test, crash, hang or sanitizer report.
#
#   o2-futex   o2-fallback      -O2; the tests build with -Werror, cext/ must build warning-free
#   tsan-futex tsan-fallback    ThreadSanitizer (-O1 -g)
#   asan-futex asan-fallback    AddressSanitizer + UBSan (-fno-sanitize-recover=all)
#
# "fallback" is -DCY_PARK_FALLBACK: the portable mutex+condvar parking used
# where there is no futex/ulock/WaitOnAddress, built and run here too.  Plus
# compile-only checks, each skipped when its compiler is missing: clang
# -Werror (tests; cext/ warnings are reported), the Windows backend with
# mingw-w64 (cext/ + smoke_portable.c, compiled and linked), and the macOS
# backends' syntax (cy_park.c with __APPLE__ instead of __linux__).
#
# usage: run.sh [--quick] [--xfail-known] [--config NAME]... [--scale F]
#               [--jobs N] [--no-cross] [filter...]
#   --quick        a short run (whole run well under a minute on 2 cores)
#   --xfail-known  cases that demonstrate a known, reported bug in cext/
#                  count as skipped (XFAIL) instead of failed while it lasts
#   --config NAME  only this configuration (repeatable)
#   --scale F      multiply every configuration's iteration counts by F
#   filter...      only the cases whose name contains one of these
# Environment: CC (default gcc), CYTEST_SEED (reproduce a run's randomness).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cext=$(dirname "$here")
build=$here/build
logs=$build/logs
CC=${CC:-gcc}
export CC

quick=0
xfail=0
cross=1
mult=1
jobs=$(nproc 2>/dev/null || echo 2)
configs=()
filters=()
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --xfail-known) xfail=1 ;;
    --no-cross) cross=0 ;;
    --config) configs+=("$2"); shift ;;
    --scale) mult=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) filters+=("$1") ;;
  esac
  shift
done
((${#configs[@]})) || configs=(o2-futex o2-fallback tsan-futex tsan-fallback asan-futex asan-fallback)

# Iteration scale per kind of build: 1 = the sizes written in the tests
# (8-32 threads x 10^4-10^5 operations per primitive).
scale_for() {
  local kind=${1%%-*} s
  if ((quick)); then
    case $kind in o2) s=0.05 ;; tsan) s=0.02 ;; *) s=0.03 ;; esac
  else
    case $kind in o2) s=1 ;; tsan) s=0.5 ;; *) s=0.5 ;; esac
  fi
  awk -v a="$s" -v b="$mult" 'BEGIN { printf "%g", a * b }'
}

mkdir -p "$logs"
rm -f "$logs"/*.log
t_start=$(date +%s)
total_pass=0 total_fail=0 total_skip=0
summary=()

note() { printf '%s\n' "$*"; }
record() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }

# A line that starts a sanitizer or watchdog report (reports of a child
# process that a known-bug case runs on purpose are indented: not matched).
report_re='^(WARNING: ThreadSanitizer|==[0-9]+==(ERROR|WARNING): (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|SUMMARY: (Address|Thread|Leak|UndefinedBehavior)Sanitizer|[^ ].*: runtime error: |WATCHDOG:|ThreadSanitizer: )'

export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# Runs one test binary; adds its counts to the totals.
run_binary() {
  local cfg=$1 bin=$2 scale=$3
  local name log rc=0 line p=0 f=0 s=0 t0 t1 args=()
  name=$(basename "$bin")
  log=$logs/$cfg.$name.log
  args=(--scale "$scale")
  ((xfail)) && args+=(--xfail-known)
  ((${#filters[@]})) && args+=("${filters[@]}")
  [[ $name == smoke_portable ]] && args=()
  t0=$(date +%s.%N)
  "$bin" "${args[@]}" >"$log" 2>&1 || rc=$?
  # gcc 12's TSan cannot map its shadow memory under some ASLR layouts: retry without ASLR.
  if grep -q 'unexpected memory mapping\|FATAL: ThreadSanitizer' "$log" && command -v setarch >/dev/null; then
    note "   ($name: TSan could not map its memory; again without ASLR)"
    rc=0
    setarch "$(uname -m)" -R "$bin" "${args[@]}" >"$log" 2>&1 || rc=$?
  fi
  t1=$(date +%s.%N)
  cat "$log"
  line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
  fi
  local verdict="$p passed, $f failed"
  ((s)) && verdict="$verdict, $s skipped"
  if grep -Eq "$report_re" "$log"; then
    note "!! $cfg/$name: sanitizer or watchdog report (see above; log: $log)"
    f=$((f + 1)); verdict="$verdict + REPORT"
  elif [[ -z $line ]]; then
    note "!! $cfg/$name: exited $rc without its closing line (crash?)"
    f=$((f + 1)); verdict="no closing line, exit $rc"
  elif ((rc != 0 && f == 0)); then
    note "!! $cfg/$name: exit status $rc"
    f=$((f + 1)); verdict="$verdict, exit $rc"
  fi
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
  record "$cfg/$name" "$(printf '%-36s %6.1fs' "$verdict" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")"
}

# The planted bugs of canary.c must be reported (and fail) in sanitizer builds.
canary() {
  local cfg=$1 kind=${1%%-*} what want rc log
  case $kind in
    tsan) set -- "race:WARNING: ThreadSanitizer: data race" ;;
    asan) set -- "overflow:AddressSanitizer: heap-buffer-overflow|runtime error: load of address .* insufficient space" \
                 "ub:runtime error: signed integer overflow" ;;
    *) return 0 ;;
  esac
  for spec in "$@"; do
    what=${spec%%:*} want=${spec#*:} rc=0
    log=$logs/$cfg.canary-$what.log
    "$build/$cfg/canary" "$what" >"$log" 2>&1 || rc=$?
    if grep -q 'unexpected memory mapping\|FATAL: ThreadSanitizer' "$log"; then
      rc=0; setarch "$(uname -m)" -R "$build/$cfg/canary" "$what" >"$log" 2>&1 || rc=$?
    fi
    if ((rc != 0)) && grep -Eq "$want" "$log"; then
      note "   canary $what: caught (\"$want\", exit $rc)"
      total_pass=$((total_pass + 1))
      record "$cfg/canary-$what" "caught, exit $rc"
    else
      cat "$log"
      note "!! $cfg: the planted '$what' bug went unreported (exit $rc): the sanitizer is not in force"
      total_fail=$((total_fail + 1))
      record "$cfg/canary-$what" "NOT CAUGHT (exit $rc)"
    fi
  done
}

for cfg in "${configs[@]}"; do
  scale=$(scale_for "$cfg")
  note ""
  note "######## $cfg (scale $scale) ########"
  blog=$logs/$cfg.build.log
  t0=$(date +%s)
  if ! make -C "$here" --no-print-directory -j"$jobs" CONFIG="$cfg" build >"$blog" 2>&1; then
    cat "$blog"
    note "!! $cfg: build failed"
    [[ $cfg == tsan-* || $cfg == asan-* ]] &&
      note "   (no sanitizer runtime? on Debian: apt-get install gcc libtsan2 libasan8 libubsan1)"
    total_fail=$((total_fail + 1))
    record "$cfg" "BUILD FAILED"
    continue
  fi
  if grep -q 'warning:' "$blog"; then
    grep -B2 -A6 'warning:' "$blog" || true
    if [[ $cfg == o2-* ]]; then
      note "!! $cfg: compiler warnings (cext/ must build warning-free with -Wall -Wextra -Wpedantic)"
      total_fail=$((total_fail + 1))
      record "$cfg/warnings" "FAILED: $(grep -c 'warning:' "$blog") warnings"
    fi
  elif [[ $cfg == o2-* ]]; then
    total_pass=$((total_pass + 1))
    record "$cfg/warnings" "none (-std=c11 -Wall -Wextra -Wpedantic; tests -Werror)"
  fi
  note "   built in $(($(date +%s) - t0)) s"
  canary "$cfg"
  for bin in "$build/$cfg"/test_* "$build/$cfg/smoke_portable"; do
    [[ -x $bin && $bin != *.o ]] || continue
    run_binary "$cfg" "$bin" "$scale"
  done
done

# ---------------------------------------------------------------- cross checks
cross_check() { # name, then the command
  local name=$1; shift
  local log=$logs/cross.${name//[^A-Za-z0-9_.-]/_}.log
  if "$@" >"$log" 2>&1; then
    if grep -q 'warning:' "$log"; then
      cat "$log"
      record "cross/$name" "ok, with warnings in cext/ (above)"
    else
      record "cross/$name" "ok"
    fi
    total_pass=$((total_pass + 1))
  else
    cat "$log"
    note "!! cross check $name failed"
    record "cross/$name" "FAILED"
    total_fail=$((total_fail + 1))
  fi
}

clang_check() { # tests with -Werror, cext/ warnings shown but not fatal
  local f
  for f in "$cext"/*.c; do
    clang -std=c11 -Wall -Wextra -Wpedantic -fsyntax-only "$@" -I"$cext" "$f" || return 1
  done
  for f in "$here"/*.c; do
    clang -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "$@" -I"$cext" -I"$here" "$f" || return 1
  done
}

if ((cross)); then
  note ""
  note "######## compile-only checks ########"
  mkdir -p "$build/cross"
  if command -v clang >/dev/null; then
    cross_check clang-futex clang_check
    cross_check clang-fallback clang_check -DCY_PARK_FALLBACK=1
  else
    record "cross/clang" "skipped (no clang)"
  fi
  mingw=$(command -v x86_64-w64-mingw32-gcc || true)
  if [[ -n $mingw ]]; then
    cross_check windows-waitonaddress "$mingw" -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -I"$cext" \
      -o "$build/cross/smoke_portable.exe" "$here/smoke_portable.c" "$cext"/*.c -lsynchronization
    cross_check windows-fallback "$mingw" -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -DCY_PARK_FALLBACK=1 \
      -I"$cext" -o "$build/cross/smoke_portable_fallback.exe" "$here/smoke_portable.c" "$cext"/*.c -lpthread
  else
    record "cross/windows" "skipped (no x86_64-w64-mingw32-gcc)"
  fi
  # No macOS SDK here: check cy_park.c's Darwin branches parse and type-check.
  cross_check macos-ulock "$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -U__linux__ -D__APPLE__ \
    -I"$cext" "$cext/cy_park.c"
  cross_check macos-fallback "$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -U__linux__ -D__APPLE__ \
    -DCY_PARK_FALLBACK=1 -include "$here/macos_shim.h" -I"$cext" "$cext/cy_park.c"
fi

note ""
note "######## summary ($(($(date +%s) - t_start)) s, $( ((quick)) && echo quick || echo full ) run) ########"
printf '%s\n' "${summary[@]}"
if ((total_skip)); then
  note "$total_pass passed, $total_fail failed, $total_skip skipped"
else
  note "$total_pass passed, $total_fail failed"
fi
((total_fail == 0))
