#!/usr/bin/env bash
# Mutation testing of the pure core with mutmut (configured in pyproject.toml,
# [tool.mutmut]; scores and surviving mutants in docs/testing.md).
#
#   scripts/mutation.sh                      every configured module, one after another
#   scripts/mutation.sh snowload/hdr.py      one module (several may be given)
#   scripts/mutation.sh --survivors [module...]  re-test only what the last runs left alive
#   scripts/mutation.sh --summary            only print the scores of the last runs
#
# mutmut copies the packages into mutants/, mutates the listed files there and runs the
# fast unit tests that cover each mutated function. A module run re-tests every mutant of
# the module (mutmut re-tests the mutants it is named); mutants/ keeps the map of which
# tests cover which function and the last results (rm -rf mutants/ for a fresh start).
# --survivors re-tests the mutants of the last runs that were not killed (after adding
# tests: killed mutants stay killed when tests are only added).
# MUTATION_CHILDREN (default 1) sets the number of parallel test processes.
set -euo pipefail
cd "$(dirname "$0")/.."

# The mutated copy must be the one the tests import. mutmut puts mutants/ first on
# sys.path and drops the repository root from it; a PYTHONPATH pointing at a checkout
# would still win over a module missing from the copy, so it goes.
unset PYTHONPATH
# hypothesis draws the same examples for every mutant (tests/conftest.py)
export SNOWLOAD_HYPOTHESIS_PROFILE=mutation

children="${MUTATION_CHILDREN:-1}"

modules() {
  python3 - <<'EOF'
import tomllib
for path in tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"]:
    print(path)
EOF
}

summary() {
  mutmut results --all true | python3 scripts/mutation_summary.py
}

if [ "${1:-}" = "--summary" ]; then
  summary
  exit 0
fi

mapfile -t configured < <(modules)

if [ "${1:-}" = "--survivors" ]; then
  shift
  prefixes=("$@")
  [ ${#prefixes[@]} -gt 0 ] || prefixes=("${configured[@]}")
  names=()
  for path in "${prefixes[@]}"; do
    dotted="$(echo "${path%.py}" | tr / .)."
    mapfile -t -O "${#names[@]}" names < <(
      mutmut results --all true |
        awk -F': ' -v p="$dotted" '{ sub(/^ +/, "", $1) }
          index($1, p) == 1 && $2 != "killed" && $2 != "timeout" && $2 != "segfault" { print $1 }'
    )
  done
  echo "== ${#names[@]} mutants not killed by the last runs"
  if [ ${#names[@]} -gt 0 ]; then
    start=$(date +%s)
    mutmut run --max-children "$children" "${names[@]}" | tail -n 3
    echo "   $(($(date +%s) - start)) s"
  fi
  summary
  exit 0
fi
if [ $# -eq 0 ]; then
  targets=("${configured[@]}")
else
  targets=("$@")
fi

for path in "${targets[@]}"; do
  if ! printf '%s\n' "${configured[@]}" | grep -qxF -- "$path"; then
    echo "$path is not in [tool.mutmut] only_mutate of pyproject.toml" >&2
    exit 2
  fi
  glob="$(echo "${path%.py}" | tr / .).*"
  echo "== $path"
  start=$(date +%s)
  mutmut run --max-children "$children" "$glob" | tail -n 3
  echo "   $(($(date +%s) - start)) s"
done
summary
