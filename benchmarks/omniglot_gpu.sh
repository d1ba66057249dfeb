#!/usr/bin/env bash
# One run on a GPU machine, under 10 minutes: the image-grid benchmark first, then as many chunks of the
# paper-scale Fig. 4b (config/config.yaml's paper_grid, `maml-convergence paper-grid`) as the time left
# allows, each kept whole the moment it is done, and the folder packed into one tar file every 20 s, so
# that what is done survives the run being cut off.
#
#   bash benchmarks/omniglot_gpu.sh [OUTDIR [SECONDS]]      # default: $OUT or results/gpu, 540 s
#   CONFIGFILE=/tmp/small.yaml bash benchmarks/omniglot_gpu.sh /tmp/try 120   # the mechanics, on a CPU
#
# Outputs (3 files): benchmark.txt (its last line is the benchmark's JSON); omniglot-paper.tar, holding
# omniglot-paper/chunk-<i>.{csv,json} (the chunks done, this run's and those it found in
# figures/data/omniglot-paper) and paper-grid/ (the resume file of a chunk cut short); run.log. Back on a
# checkout:
#
#   tar -xf omniglot-paper.tar -C figures/data omniglot-paper    # commit these: the chunks
#   tar -xf omniglot-paper.tar -C results paper-grid             # optional: resume the cut chunk
#
# The GPU machine may have no internet, no snakemake and no jsonschema, and the offline mirror does not
# travel: carry the prepared dataset and wheels (docs/gpu-and-cluster.md, "On a GPU machine without
# internet", has the two commands).
set -uo pipefail
OUTDIR=${1:-${OUT:-results/gpu}}
BUDGET=${2:-540}
PY=${PYTHON:-python3}
DATA=${DATA:-data/prepared/omniglot.npz}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MAML_CONVERGENCE_COMMIT=${MAML_CONVERGENCE_COMMIT:-$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)}
deadline=$(( $(date +%s) + BUDGET ))
WORK=results/gpu-run  # outside OUTDIR: only the tar, the benchmark and the log come back
mkdir -p "$WORK/omniglot-paper" "$WORK/paper-grid"
exec > >(tee -a "$OUTDIR/run.log") 2>&1
$PY -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
[ -f "$DATA" ] || { echo "no prepared dataset at $DATA: carry it (docs/gpu-and-cluster.md: On a GPU machine without internet)"; exit 2; }
CONFIG=(${CONFIGFILE:+--configfile "$CONFIGFILE"})
cp -n figures/data/omniglot-paper/chunk-* "$WORK/omniglot-paper/" 2>/dev/null  # continue the committed grid
cp -n results/paper-grid/*.ckpt "$WORK/paper-grid/" 2>/dev/null                 # and a chunk cut short earlier

pack() {  # the folder as one file, replaced atomically
    tar -cf "$OUTDIR/omniglot-paper.tar.part" -C "$WORK" omniglot-paper paper-grid && \
        mv "$OUTDIR/omniglot-paper.tar.part" "$OUTDIR/omniglot-paper.tar"
}

start=$(date +%s)
timeout $(( BUDGET / 4 )) $PY benchmarks/image_grid.py --steps 10 "${CONFIG[@]}" | tee "$OUTDIR/benchmark.txt"
echo "benchmark: $(( $(date +%s) - start )) s"

left=$(( deadline - $(date +%s) - 15 ))  # 15 s to pack the last chunk
( while sleep 20; do pack; done ) &
packer=$!
timeout --signal=TERM --kill-after=10 "$left" $PY -m maml_convergence paper-grid "${CONFIG[@]}" --data "$DATA" \
    --into "$WORK/omniglot-paper" --scratch "$WORK/paper-grid" --budget-seconds $(( left - 10 ))
echo "paper-grid exited with $?"
kill "$packer" 2>/dev/null
pack
echo "chunks kept: $(ls "$WORK/omniglot-paper" | grep -c json); done in $(( $(date +%s) - start )) s"
