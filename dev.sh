#!/usr/bin/env bash
# One entry point that sets itself up: ./dev.sh demo | test [pytest args] | bench [args] | python [args] | lint | docs
# (`./dev.sh test` with no arguments also runs lint and the docs build beside the suite, as CI does)
# Creates .venv with Python >= 3.12 and installs the package when missing or when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
    local c
    for c in "${PYTHON:-}" python3.12 python3.13 python3.14 python3 \
             "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
        [ -n "$c" ] || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
            command -v "$c" 2>/dev/null || echo "$c"; return 0
        fi
    done
    return 1
}

ensure_venv() {
    local stamp=.venv/.parmcmc-installed
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(cksum < pyproject.toml)" ]; then
        return 0
    fi
    if [ ! -x .venv/bin/python ]; then
        local py
        py=$(find_python) || { echo "error: parmcmc needs Python >= 3.12; none found on PATH or in ~/.pyenv. Install one or set PYTHON=/path/to/python3.12." >&2; exit 1; }
        echo "creating .venv with $py" >&2
        "$py" -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip >&2
    # Extras named as arguments (ensure_venv lint docs) come in the same pip run: one resolution, one editable build.
    local extras=test,plot e
    for e in "$@"; do extras+=",$e"; done
    .venv/bin/python -m pip install -q -e ".[$extras]" >&2
    cksum < pyproject.toml > "$stamp"
    for e in "$@"; do cksum < pyproject.toml > ".venv/.parmcmc-$e-installed"; done
}

# Optional dependency groups (pyproject.toml) on top of the venv, reinstalled when pyproject.toml changes; those
# missing or stale are installed in one pip run.
ensure_extra() {
    local e stamp stale=()
    for e in "$@"; do
        stamp=.venv/.parmcmc-$e-installed
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(cksum < pyproject.toml)" ] || stale+=("$e")
    done
    [ ${#stale[@]} -gt 0 ] || return 0
    local IFS=,
    .venv/bin/python -m pip install -q -e ".[${stale[*]}]" >&2
    for e in "${stale[@]}"; do cksum < pyproject.toml > ".venv/.parmcmc-$e-installed"; done
}

# ruff check, ruff format --check and basedpyright (configured in pyproject.toml); runs all three, fails if any does.
lint() {
    local rc=0
    echo "== ruff check" >&2; .venv/bin/ruff check "$@" || rc=1
    echo "== ruff format --check (ruff format --diff shows the changes)" >&2
    .venv/bin/ruff format --check --output-format concise "$@" || rc=1
    echo "== basedpyright (basic)" >&2; .venv/bin/basedpyright "$@" || rc=1
    return $rc
}

cmd=${1:-help}; [ $# -gt 0 ] && shift
case "$cmd" in
    demo)   ensure_venv; exec .venv/bin/python -m parmcmc.demo "$@" ;;
    # Tests run in two processes by default: most of their time is single-threaded XLA compilation.
    # `./dev.sh test` alone (the README's and CI's command) also runs lint and the docs build, and fails if either
    # does: both run beside the suite at low priority (nice 10), in the gaps the two workers leave (their start,
    # the last file's tail) instead of ~30 s before it with one of two cores idle; their logs follow pytest's.
    # With pytest arguments (chosen tests) it runs pytest alone.
    test)   if [ $# -gt 0 ]; then
                ensure_venv
                exec .venv/bin/python -m pytest -n "${PARMCMC_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
            fi
            ensure_venv lint docs; ensure_extra lint docs  # first: two pip runs must not overlap
            lint_log=$(mktemp); docs_log=$(mktemp)
            nice -n 10 ./dev.sh lint >"$lint_log" 2>&1 & lint_pid=$!
            nice -n 10 ./dev.sh docs >"$docs_log" 2>&1 & docs_pid=$!
            # Files go to the workers in collection order (tests/conftest.py puts the longest first).
            test_rc=0
            .venv/bin/python -m pytest -n "${PARMCMC_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
                || test_rc=$?
            lint_rc=0; wait "$lint_pid" || lint_rc=1
            docs_rc=0; wait "$docs_pid" || docs_rc=1
            cat "$lint_log" "$docs_log" >&2; rm -f "$lint_log" "$docs_log"
            [ $lint_rc -eq 0 ] || echo "error: ./dev.sh lint failed (findings above)" >&2
            [ $docs_rc -eq 0 ] || echo "error: ./dev.sh docs failed (warnings above)" >&2
            [ $test_rc -eq 0 ] || echo "error: the tests failed (pytest's report above the lint and docs logs)" >&2
            [ $test_rc -eq 0 ] && [ $lint_rc -eq 0 ] && [ $docs_rc -eq 0 ] ;;
    # PARMCMC_NO_VENV=1: the Python already there (${PYTHON:-python3}, with the package on PYTHONPATH), no venv and
    # nothing fetched: a lent GPU machine (`./dev.sh bench device_wheels` prints its command).
    bench)  if [ -n "${PARMCMC_NO_VENV:-}" ]; then exec "${PYTHON:-python3}" -m parmcmc.bench "$@"; fi
            ensure_venv; exec .venv/bin/python -m parmcmc.bench "$@" ;;
    python) ensure_venv; exec .venv/bin/python "$@" ;;
    lint)   ensure_venv; ensure_extra lint; lint "$@" ;;
    # The documentation site (mkdocs.yml) into site/, warnings as errors; `./dev.sh docs serve` previews it.
    docs)   ensure_venv; ensure_extra docs
            export NO_MKDOCS_2_WARNING=1  # mkdocs-material's banner about its successor, printed on every build
            if [ "${1:-}" = serve ]; then shift; exec .venv/bin/mkdocs serve "$@"; fi
            exec .venv/bin/mkdocs build --strict "$@" ;;
    *) echo "usage: ./dev.sh demo | test [pytest args] | bench [preset] | python [args] | lint [paths] | docs [serve]" >&2; exit 2 ;;
esac
