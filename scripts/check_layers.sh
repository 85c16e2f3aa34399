#!/usr/bin/env bash
# Checks the library's layering (README, Layout): a folder of src/ and include/qgnn/
# includes only itself and folders to its left in
#   util < graph < io < ops < quant < nn < train < autobit < pipeline < cli
# (autobit sits beside train and uses it). Prints every violation; exit 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."
order=(util graph io ops quant nn train autobit pipeline cli)
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
bad=0
for area in "${order[@]}"; do
  for dir in "src/$area" "include/qgnn/$area"; do
    [[ -d $dir ]] || continue
    while IFS= read -r line; do
      file=${line%%:*}
      inc=$(sed -E 's/.*#include "(qgnn\/)?([a-z_]+)\/.*/\2/' <<<"${line#*:}")
      [[ -n ${rank[$inc]+x} ]] || continue  # not a library folder (testing/, CLI/, ...)
      if ((rank[$inc] > rank[$area])); then
        echo "layering: $file ($area) includes $inc/: ${line#*:}"
        bad=1
      fi
    done < <(grep -rHE '^#include "(qgnn/)?[a-z_]+/' "$dir" || true)
  done
done
if ((bad)); then exit 1; fi
echo "layering: ok (${order[*]})"
