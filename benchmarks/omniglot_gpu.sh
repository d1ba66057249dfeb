#!/usr/bin/env bash
# One run on a GPU machine, under 10 minutes: the image-grid benchmark first, then as much of the
# paper's Omniglot grid (35 x 34 cells x 100 iterations, config/config.yaml) as the time left
# allows, chunk after chunk, each chunk's rows and provenance appended to the outputs as soon as
# it is done (a chunk cut off by the deadline is dropped whole, never half-written).
#
#   bash benchmarks/omniglot_gpu.sh [OUTDIR [SECONDS [CHUNKS]]]   # default: $OUT or results/gpu, 540 s, 64
#   CONFIGFILE=config/quick.yaml bash benchmarks/omniglot_gpu.sh /tmp/try 120 2   # the mechanics, on a CPU
#
# Outputs (4 files, as the device tool brings back at most 8): benchmark.txt (its last line is
# the benchmark's JSON), omniglot_paper_chunks.csv (the cells done, the grid's columns plus
# `chunk`), omniglot_paper_chunks.jsonl (one provenance record per chunk), run.log.
#
# The GPU machine has no internet, no snakemake and no jsonschema, and the offline mirror does
# not travel: carry the prepared dataset and wheels (docs/gpu-and-cluster.md, "On a GPU machine
# without internet", has the two commands). A chunk is every CHUNKS-th cell (rule image_grid's split), so the cells done
# spread over the whole grid. On a machine with Snakemake the same work is
# `snakemake --profile profiles/local-gpu results/omniglot/grid.csv`.
set -uo pipefail
OUTDIR=${1:-${OUT:-results/gpu}}
BUDGET=${2:-540}
CHUNKS=${3:-64}
PY=${PYTHON:-python3}
DATA=${DATA:-data/prepared/omniglot.npz}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MAML_CONVERGENCE_COMMIT=${MAML_CONVERGENCE_COMMIT:-$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)}
deadline=$(( $(date +%s) + BUDGET ))
mkdir -p "$OUTDIR" results/gpu-chunks
exec > >(tee -a "$OUTDIR/run.log") 2>&1
$PY -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
[ -f "$DATA" ] || { echo "no prepared dataset at $DATA: carry it (docs/gpu-and-cluster.md: On a GPU machine without internet)"; exit 2; }

start=$(date +%s)
CONFIG=(${CONFIGFILE:+--configfile "$CONFIGFILE"})
timeout $(( BUDGET / 3 )) $PY benchmarks/image_grid.py --steps 10 "${CONFIG[@]}" | tee "$OUTDIR/benchmark.txt"
echo "benchmark: $(( $(date +%s) - start )) s"

for i in $(seq 0 $(( CHUNKS - 1 ))); do
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt 30 ]; then
        echo "stopping before chunk $i: ${left} s left"
        break
    fi
    part=results/gpu-chunks/$i
    if timeout "$left" $PY -m maml_convergence image-grid "${CONFIG[@]}" --dataset omniglot --chunk "$i" \
            --chunks "$CHUNKS" --data "$DATA" --out "$part.csv" --provenance "$part.json" --checkpoint "$part.ckpt"; then
        $PY - "$part.csv" "$part.json" "$i" "$OUTDIR" <<'EOF'
import json, sys
from pathlib import Path
import pandas as pd
table, prov, chunk, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
rows = pd.read_csv(table).assign(chunk=chunk)
csv = out / "omniglot_paper_chunks.csv"
if csv.exists():  # a chunk whose cells all diverged has no accuracy columns: align on names
    rows = pd.concat([pd.read_csv(csv), rows], ignore_index=True)
rows.to_csv(csv.with_suffix(".part"), index=False)
csv.with_suffix(".part").replace(csv)
with open(out / "omniglot_paper_chunks.jsonl", "a") as f:
    f.write(json.dumps({"chunk": chunk, **json.loads(Path(prov).read_text())}) + "\n")
print(f"chunk {chunk} saved ({len(rows)} cells in all)")
EOF
    else
        echo "chunk $i did not finish (deadline or error); its rows are not kept"
        break
    fi
done
echo "done: $(( $(date +%s) - start )) s"
