#!/usr/bin/env bash
# Run HERE (the machine with network access), from anywhere in the repository:
#   benchmarks/gpu_truth/prepare.sh
# 1. downloads vllm==0.24.0 (or copies it from $VLLM_WHEEL / /work/vsrc/dl) and the pure-Python
#    dependencies pinned in deps.txt into stage/wheels/ (git-ignored);
# 2. packs them into one uncompressed tar, stage/bundle.tar, and splits it into parts of
#    PART_MIB MiB, one per folder parts/NN/ (git-ignored), each with a part.json saying its
#    index, the part count and the bundle's sha256;
# 3. builds the case folders under stage/cases/ (cases.py: broken variants via
#    tests/fixtures/broken.py, config-only folders with a tokenizer).
# PART_MIB: every device call carries the whole working tree plus one part, 64 MiB at most, so
# the default is 64 minus the tree's size minus a 3 MiB margin (about 34 MiB for a 27 MiB tree).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STAGE=$HERE/stage
PARTS=$HERE/parts
VLLM_VERSION=0.24.0
WHEEL_NAME=vllm-$VLLM_VERSION-cp38-abi3-manylinux_2_28_x86_64.whl
mkdir -p "$STAGE/wheels"

# --- 1. wheels
if [ ! -f "$STAGE/wheels/$WHEEL_NAME" ]; then
  src=${VLLM_WHEEL:-/work/vsrc/dl/$WHEEL_NAME}
  if [ -f "$src" ]; then
    cp "$src" "$STAGE/wheels/"
  else
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 -d "$STAGE/wheels" "vllm==$VLLM_VERSION"
  fi
fi
# every manylinux tag up to 2_34 that the device image (glibc 2.39, Python 3.12) accepts;
# pip matches N exactly
plats=()
for t in 1 2010 2014; do plats+=(--platform "manylinux${t}_x86_64"); done
for n in 5 12 17 24 26 27 28 31 34; do plats+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${plats[@]}" -d "$STAGE/wheels" -r "$HERE/deps.txt"
n=$(ls "$STAGE"/wheels/*.whl | wc -l)
echo "wheels: $n ($(du -sh "$STAGE/wheels" | cut -f1))"

# --- 2. bundle and parts
tree_bytes=$(cd "$ROOT" && { git ls-files -z; git ls-files -z --others --exclude-standard; } \
  | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
tree_mib=$(( (tree_bytes + 1048575) / 1048576 ))
PART_MIB=${PART_MIB:-$(( 64 - tree_mib - 3 ))}
echo "working tree: $tree_mib MiB -> parts of $PART_MIB MiB"
rm -f "$STAGE/bundle.tar"
(cd "$STAGE/wheels" && tar cf "$STAGE/bundle.tar" --sort=name *.whl)
sha=$(sha256sum "$STAGE/bundle.tar" | cut -d' ' -f1)
rm -rf "$PARTS" && mkdir -p "$PARTS"
(cd "$PARTS" && split -b "${PART_MIB}m" -d -a 2 "$STAGE/bundle.tar" part.)
total=$(ls "$PARTS" | wc -l)
for f in "$PARTS"/part.*; do
  i=${f##*.}
  mkdir "$PARTS/$i" && mv "$f" "$PARTS/$i/part"
  printf '{"index": %d, "total": %d, "bundle_sha256": "%s", "bundle_bytes": %d}\n' \
    $((10#$i)) "$total" "$sha" "$(stat -c %s "$STAGE/bundle.tar")" > "$PARTS/$i/part.json"
done
echo "bundle: $(du -h "$STAGE/bundle.tar" | cut -f1), sha256 $sha, $total parts in $PARTS/NN"

# --- 3. case folders
python3 "$HERE/cases.py"
echo "case folders: $(du -sh "$STAGE/cases" | cut -f1)"
