#!/usr/bin/env bash
# Run one molecule scenario's whole test sequence, `molecule test -s SCENARIO`, with the venv on PATH; stamp
# each line of its output, as it streams, with the wall clock and the seconds since the start; end with a
# table of the seconds each action took (destroy, syntax, create, prepare, converge, idempotence, ...).
# Exits with molecule's exit code.
#
#   bash scripts/molecule-test.sh SCENARIO [MORE MOLECULE TEST OPTIONS]     e.g. default, fleet
set -euo pipefail
shopt -s extglob
cd "$(dirname "$0")/.."
scenario=${1:?usage: scripts/molecule-test.sh SCENARIO [OPTIONS]}
shift
export PATH="$PWD/.venv/bin:$PATH"

# Reads molecule's output on stdin. Molecule (25 and later) announces each action with a line
# `INFO     [SCENARIO > ACTION] Executing` (`SCENARIO ➜ ACTION: Executing` when it colours its output) and
# closes it with `... Executed: RESULT`; colours, if any, are stripped before matching.
stamp() {
    local started=$EPOCHSECONDS now line plain name verb action="" action_started=0 i total
    local -a actions=() seconds=() results=()
    local announce="^[A-Z]+ +(\\[${scenario} > ([a-z_]+)\\]|${scenario} ➜ ([a-z_]+):) (Executing|Executed: (.*))$"
    while IFS= read -r line; do
        now=$EPOCHSECONDS
        printf '%(%H:%M:%S)T %5ss | %s\n' "$now" "$((now - started))" "$line"
        plain=${line//$'\e['*([0-9;])m/}
        [[ $plain =~ $announce ]] || continue
        name=${BASH_REMATCH[2]}${BASH_REMATCH[3]} verb=${BASH_REMATCH[4]}
        if [[ $verb == Executing ]]; then
            if [[ -n $action ]]; then # the last one never said how it ended
                actions+=("$action") seconds+=("$((now - action_started))") results+=("(no end)")
            fi
            action=$name action_started=$now
        elif [[ $name == "$action" ]]; then
            actions+=("$action") seconds+=("$((now - action_started))") results+=("${BASH_REMATCH[5]}")
            action=""
        fi
    done
    now=$EPOCHSECONDS
    if [[ -n $action ]]; then
        actions+=("$action") seconds+=("$((now - action_started))") results+=("(output ended)")
    fi
    total=$((now - started))
    printf '\nmolecule test -s %s, seconds per action:\n' "$scenario"
    for i in "${!actions[@]}"; do
        printf '  %-14s %6s  %s\n' "${actions[i]}" "${seconds[i]}" "${results[i]}"
    done
    printf '  %-14s %6s  (%dm%02ds)\n' total "$total" "$((total / 60))" "$((total % 60))"
}

status=0
NO_COLOR=1 molecule test -s "$scenario" "$@" 2>&1 </dev/null | stamp || status=$?
echo "molecule-test: scenario $scenario, molecule exit code $status"
exit "$status"
