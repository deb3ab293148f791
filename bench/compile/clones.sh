#!/usr/bin/env bash
# Compile time and object size of policy objects whose resume clones are
# in the object (`--resume-clones=in-object`, the default) or compiled on
# demand (`--resume-clones=on-demand`), against the no-policy compile of
# the same module, measured side by side (issues 12 and 16).
#
#   bench/compile/clones.sh [-n RUNS] [FILE.wasm|FILE.wat ...]
#
# Without files: five bench workloads. Each cell is the median over RUNS
# (default 5) of the compiling process's CPU time (user + system, GNU
# time), runs of the different modes interleaved. Needs the release
# build (`cargo build --release -p mvvm-cli`). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=5
if [[ ${1:-} == -n ]]; then runs=$2; shift 2; fi
aot=target/release/mvvm-aot
[[ -x $aot ]] || { echo "build first: cargo build --release -p mvvm-cli" >&2; exit 2; }
files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
    files=(bench/wasm/bc.wasm bench/wasm/binary-trees.wasm bench/wasm/llama2.wasm
           bench/wasm/floyd-warshall.wasm bench/wasm/mg.wasm)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# mode name -> mvvm-aot flags
modes=(none loop loop-od counter counter-od)
flags() {
    case $1 in
        none) echo "" ;;
        loop) echo "--enable-loop-checkpoint" ;;
        loop-od) echo "--enable-loop-checkpoint --resume-clones=on-demand" ;;
        counter) echo "--enable-counter-loop-checkpoint --threshold-bits=16" ;;
        counter-od) echo "--enable-counter-loop-checkpoint --threshold-bits=16 --resume-clones=on-demand" ;;
    esac
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "| module | none: CPU s, KiB | loop: time, size | loop on demand: time, size | counter-loop:16: time, size | counter-loop:16 on demand: time, size |"
echo "|---|---|---|---|---|---|"
for f in "${files[@]}"; do
    name=$(basename "${f%.*}")
    for r in $(seq "$runs"); do
        for m in "${modes[@]}"; do
            # shellcheck disable=SC2046
            /usr/bin/time -f "%U %S" -o "$tmp/t" "$aot" $(flags "$m") -o "$tmp/$m.aot" "$f"
            awk '{print $1 + $2}' "$tmp/t" >> "$tmp/$name.$m.times"
        done
    done
    declare -A cpu size
    for m in "${modes[@]}"; do
        cpu[$m]=$(median < "$tmp/$name.$m.times")
        size[$m]=$(stat -c %s "$tmp/$m.aot")
    done
    row="| $name | ${cpu[none]} s, $(( size[none] / 1024 ))"
    for m in loop loop-od counter counter-od; do
        row+=" | $(awk -v a="${cpu[$m]}" -v b="${cpu[none]}" 'BEGIN {printf "%.2fx", a / b}'), $(awk -v a="${size[$m]}" -v b="${size[none]}" 'BEGIN {printf "%.2fx", a / b}')"
    done
    echo "$row |"
done
