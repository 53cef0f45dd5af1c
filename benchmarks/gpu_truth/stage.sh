#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repository root, once per part (the call carries that part):
#   bash benchmarks/gpu_truth/stage.sh benchmarks/gpu_truth/parts/03
# Appends the part to ~/gpu_truth/bundle.tar (in order; a part already appended is skipped).
# After the last part it checks the bundle's sha256, unpacks the wheels and installs them with
# `pip install --no-index --no-deps --target ~/gpu_truth/site`, then imports vllm once.
# Afterwards: export PYTHONPATH=~/gpu_truth/site
set -euo pipefail
part_dir=${1:?part folder}
W=~/gpu_truth
mkdir -p "$W"
read -r idx total sha bytes < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
print(d['index'], d['total'], d['bundle_sha256'], d['bundle_bytes'])" "$part_dir/part.json")
done_n=$(cat "$W/parts_done" 2>/dev/null || echo 0)
if [ "$idx" -lt "$done_n" ]; then
  echo "part $idx already appended ($done_n of $total)"
elif [ "$idx" -gt "$done_n" ]; then
  echo "part $idx out of order: expected part $done_n (machine went cold? start again at 00)" >&2
  exit 3
else
  cat "$part_dir/part" >> "$W/bundle.tar"
  echo $((idx + 1)) > "$W/parts_done"
  echo "appended part $idx: $(( $(stat -c %s "$W/bundle.tar") >> 20 )) of $((bytes >> 20)) MiB"
fi
done_n=$(cat "$W/parts_done")
if [ "$done_n" -eq "$total" ] && [ ! -f "$W/installed" ]; then
  got=$(sha256sum "$W/bundle.tar" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || { echo "bundle sha256 mismatch: $got" >&2; exit 4; }
  mkdir -p "$W/wheels" && tar xf "$W/bundle.tar" -C "$W/wheels"
  t0=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$W/site" "$W"/wheels/*.whl
  rm -rf "$W/wheels" "$W/bundle.tar"
  touch "$W/installed"
  echo "installed in $(( $(date +%s) - t0 )) s"
  PYTHONPATH=$W/site python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', \
torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"
fi
