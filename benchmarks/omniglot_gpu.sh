#!/usr/bin/env bash
# Fig. 4b at the paper's scale on one GPU, without Snakemake: the same commands the workflow's
# chunk jobs run (rules/images.smk), one chunk after the other, then the merge.
#
#   bash benchmarks/omniglot_gpu.sh [OUTDIR [CONFIGFILE...]]
#
# Needs data/prepared/omniglot.npz (`maml-convergence prepare-data --dataset omniglot --out omniglot.json`).
# CONFIGFILEs are merged over config/config.yaml as with --configfile (config/quick.yaml tries the
# script on a CPU).
# First a coarse grid (mantissas {1, 3}: 7 x 7 cells), so that a result exists even if the
# machine is taken back; then the configured grid (the paper's: 34 x 34 cells x 100 iterations).
# With Snakemake on a GPU box the same work is `snakemake --profile profiles/local-gpu`.
set -euo pipefail
OUTDIR=${1:-results/gpu}
shift || true
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR" results/omniglot/chunks
printf 'omniglot: {mantissas: [1, 3]}\n' > "$OUTDIR/coarse.yaml"
$PY -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'

start=$(date +%s)
coarse() {
    $PY -m maml_convergence image-grid --configfile "$@" "$OUTDIR/coarse.yaml" --dataset omniglot \
        --out "$OUTDIR/omniglot_coarse_grid.csv" --provenance "$OUTDIR/omniglot_coarse_provenance.json"
}
if ! coarse "$@"; then  # most likely out of GPU memory: fewer cells per vectorised step
    echo "coarse grid failed; retrying with 4 cells per step"
    printf 'omniglot: {gpu_slots: 4}\n' > "$OUTDIR/slots.yaml"
    set -- "$@" "$OUTDIR/slots.yaml"
    coarse "$@"
fi
echo "coarse grid: $(( $(date +%s) - start )) s"

CHUNKS=$($PY -c 'import sys; from maml_convergence import config; print(config.load(*sys.argv[1:])["omniglot"]["chunks"])' "$@")
start=$(date +%s)
for i in $(seq 0 $((CHUNKS - 1))); do
    $PY -m maml_convergence image-grid --configfile "$@" --dataset omniglot --chunk "$i" --chunks "$CHUNKS" \
        --out "results/omniglot/chunks/$i.csv" --provenance "results/omniglot/chunks/$i.json" \
        --checkpoint "results/omniglot/chunks/$i.ckpt"
done
$PY -m maml_convergence image-merge --configfile "$@" --dataset omniglot \
    --chunks $(seq -f "results/omniglot/chunks/%g.csv" 0 $((CHUNKS - 1))) \
    --chunk-provenance $(seq -f "results/omniglot/chunks/%g.json" 0 $((CHUNKS - 1))) \
    --out "$OUTDIR/omniglot_grid.csv" --provenance "$OUTDIR/omniglot_provenance.json"
echo "paper grid: $(( $(date +%s) - start )) s"
