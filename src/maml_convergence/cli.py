"""Command line: one subcommand per workflow step (the Snakemake rules call these).

    maml-convergence sinusoid-grid --configfile config/config.yaml --out results/sinusoid/grid.csv

Every command validates the configuration first, writes its outputs atomically
(nothing half-written is left looking complete) and records provenance beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from . import config as config_mod
from . import data, experiments, provenance
from .grid import run_grid


def _config(args) -> dict:
    if args.config_json:
        return config_mod.validate(json.loads(args.config_json))
    return config_mod.load(*args.configfile)


def _write_grid(spec, cfg, device, out: Path, prov_path: Path, checkpoint: Path | None, experiment: str):
    start = time.perf_counter()
    rows = run_grid(spec, checkpoint=checkpoint, checkpoint_every=cfg["checkpoint_every"])
    wall = time.perf_counter() - start
    frame = experiments.grid_frame(rows)
    provenance.atomic_write_text(out, frame.to_csv(index=False))
    prov = provenance.record(experiment, cfg, device, wall, cells=len(rows), iterations=spec.iterations,
                             order=spec.order, fingerprint=spec.fingerprint(),
                             diverged=int((frame.status == "diverged").sum()))
    provenance.write_json(prov_path, prov)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    print(f"[{experiment}] {len(rows)} cells x {spec.iterations} iterations in {wall:.1f} s "
          f"({prov['diverged']} diverged) -> {out}")


def cmd_fig2(args):
    cfg = _config(args)
    start = time.perf_counter()
    curves = experiments.fig2_curves(cfg)
    provenance.atomic_write_text(args.out, curves.to_csv(index=False))
    provenance.write_json(args.provenance, provenance.record("fig2", cfg, "cpu", time.perf_counter() - start))


def _write_reference(args, name: str, compute) -> None:
    """A trained reference point and its spectrum, with provenance, as one JSON file."""
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start = time.perf_counter()
    ref = compute(cfg, device)
    ref["provenance"] = provenance.record(name, cfg, device, time.perf_counter() - start)
    provenance.write_json(args.out, ref)


def cmd_linear_reference(args):
    _write_reference(args, "linear-reference", experiments.linear_reference)


def cmd_linear_grid(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    spec = experiments.linear_spec(cfg, args.order, device)
    _write_grid(spec, cfg, device, Path(args.out), Path(args.provenance), _ckpt(args), f"linear-{args.order}")


def cmd_sinusoid_grid(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    spec = experiments.sinusoid_spec(cfg, device)
    _write_grid(spec, cfg, device, Path(args.out), Path(args.provenance), _ckpt(args), "sinusoid")


def cmd_linear_audit(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    eig = json.loads(Path(args.linear_reference).read_text())["eigenvalues"]
    start = time.perf_counter()
    table = experiments.linear_audit(cfg, device, eig)
    provenance.atomic_write_text(args.out, table.to_csv(index=False))
    provenance.write_json(args.provenance, provenance.record("linear-audit", cfg, device,
                                                             time.perf_counter() - start, eigenvalues=eig))


def cmd_sinusoid_reference(args):
    _write_reference(args, "sinusoid-reference", experiments.sinusoid_reference)


def cmd_fig1(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start = time.perf_counter()
    table = experiments.fig1_runs(cfg, device, checkpoint=_ckpt(args))
    provenance.atomic_write_text(args.out, table.to_csv(index=False))
    provenance.write_json(args.provenance, provenance.record("fig1", cfg, device, time.perf_counter() - start,
                                                             seeds=cfg["fig1"]["seeds"],
                                                             iterations=cfg["fig1"]["iterations"]))
    if args.checkpoint:
        Path(args.checkpoint).unlink(missing_ok=True)


def cmd_fig5_train(args):
    cfg = _config(args)
    device = provenance.resolve_device(cfg["device"])
    start = time.perf_counter()
    out = experiments.fig5_train(cfg, device, checkpoint=_ckpt(args))
    out["provenance"] = provenance.record("fig5-train", cfg, device, time.perf_counter() - start)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path.with_name(path.name + ".tmp"))
    os.replace(path.with_name(path.name + ".tmp"), path)
    if args.checkpoint:
        Path(args.checkpoint).unlink(missing_ok=True)


def cmd_fig5_analysis(args):
    cfg = _config(args)
    saved = torch.load(args.snapshots, weights_only=False)
    partial = Path(args.out).with_name(Path(args.out).name + ".partial.pt")
    done = {}
    if partial.exists():
        kept = torch.load(partial, weights_only=False)
        if kept.get("fingerprint") == saved["fingerprint"]:
            done = kept["done"]
            print(f"[fig5] resuming: {len(done)} snapshots already analysed")
    save = lambda d: torch.save({"fingerprint": saved["fingerprint"], "done": d}, partial)
    start = time.perf_counter()
    rows = experiments.fig5_analysis(cfg, saved["snapshots"], done, on_done=save)
    provenance.atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    provenance.write_json(args.provenance, provenance.record(
        "fig5-analysis", cfg, "cpu", time.perf_counter() - start, train=saved["provenance"],
        iterations=cfg["fig5"]["iterations"], seconds_per_snapshot=(time.perf_counter() - start) / max(1, len(
            set(saved["snapshots"]) - set(done)))))
    partial.unlink(missing_ok=True)


def _mirror(cfg) -> Path | None:
    """The configured mirror folder, or None to fetch from the canonical sources."""
    mirror = cfg["data"]["mirror"]
    if mirror is None:
        return None
    if not Path(mirror).is_dir():
        print(f"[data] mirror folder {mirror} does not exist: fetching from the canonical source instead")
        return None
    print(f"[data] reading the local mirror {mirror}")
    return Path(mirror)


def cmd_fetch_omniglot(args):
    cfg = _config(args)
    folder = data.fetch_omniglot(Path(args.root), _mirror(cfg))
    print(f"[data] Omniglot folder layout ready: {folder}")


def cmd_prepare_omniglot(args):
    path = data.prepare_omniglot(Path(args.root), Path(args.out))
    print(f"[data] prepared Omniglot: {path}")


def cmd_prepare_miniimagenet(args):
    cfg = _config(args)
    path = data.prepare_miniimagenet(Path(args.root), Path(args.out), args.split, _mirror(cfg))
    print(f"[data] prepared MiniImagenet ({args.split}): {path}")


def cmd_image_grid(args):
    cfg = _config(args)
    if (args.chunk is None) != (args.chunks is None) or (args.chunks and not 0 <= args.chunk < args.chunks):
        raise config_mod.ConfigError(f"--chunk {args.chunk} --chunks {args.chunks}: give both, with "
                                     f"0 <= chunk < chunks")
    device = provenance.resolve_device(cfg["device"])
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    spec = experiments.image_spec(cfg, args.dataset, device, args.chunk, args.chunks, args.data)
    name = f"{args.dataset}" + (f"-chunk{args.chunk}of{args.chunks}" if args.chunks else "")
    _write_grid(spec, cfg, device, Path(args.out), Path(args.provenance), _ckpt(args), name)


def cmd_image_merge(args):
    cfg = _config(args)
    frames = [pd.read_csv(p) for p in args.chunks]
    grid = experiments.merge_chunks(frames, cfg, args.dataset)
    device = provenance.resolve_device(cfg["device"])
    start = experiments.initial_eval_losses(cfg, args.dataset, sorted(grid.alpha.unique()), device, args.data)
    grid["initial_eval_loss"] = grid.alpha.map(start)
    parts = [json.loads(Path(p).read_text()) for p in args.chunk_provenance]
    provenance.atomic_write_text(args.out, grid.to_csv(index=False))
    prov = provenance.record(args.dataset, cfg, "cpu", sum(p["wall_seconds"] for p in parts), cells=len(grid),
                             iterations=cfg[args.dataset]["iterations"], order=cfg[args.dataset]["order"],
                             diverged=int((grid.status == "diverged").sum()), chunks=parts)
    prov["device"] = ", ".join(sorted({p["device"] for p in parts})) or prov["device"]  # where the chunks ran
    provenance.write_json(args.provenance, prov)
    print(f"[{args.dataset}] merged {len(args.chunks)} chunks: {len(grid)} cells -> {args.out}")


def cmd_claims(args):
    from . import claims
    cfg = _config(args)
    result = claims.evaluate(cfg, args.linear_reference, args.linear_grids, args.sinusoid_grid,
                             args.linear_audit, args.sinusoid_reference, args.fig5, args.fig1,
                             {k: v for k, v in (("omniglot", args.omniglot_grid),
                                                ("miniimagenet", args.miniimagenet_grid)) if v})
    provenance.write_json(args.out_json, result)
    provenance.atomic_write_text(args.out_md, claims.to_markdown(result))
    for row in result["claims"]:
        print(f"{row['id']:<10} {row['verdict']:<13} {row['summary']}")


def _ckpt(args):
    return Path(args.checkpoint) if args.checkpoint else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maml-convergence", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help, out=True, provenance=False, checkpoint=False):
        s = sub.add_parser(name, help=help)
        g = s.add_mutually_exclusive_group()
        g.add_argument("--configfile", nargs="*", default=[],
                       help="YAML files merged over config/config.yaml, in order")
        g.add_argument("--config-json", help="the whole, already merged configuration as JSON (Snakemake)")
        if out:
            s.add_argument("--out", required=True)
        if provenance:
            s.add_argument("--provenance", required=True)
        if checkpoint:
            s.add_argument("--checkpoint", help="resume file, kept while the run is incomplete")
        s.set_defaults(func=func)
        return s

    add("fig2", cmd_fig2, "beta_c(alpha) curves of Fig. 2", provenance=True)
    add("linear-reference", cmd_linear_reference, "Hessian spectrum at the trained reference point")
    s = add("linear-grid", cmd_linear_grid, "Fig. 3 grid", provenance=True, checkpoint=True)
    s.add_argument("--order", choices=["second", "first"], required=True)
    add("sinusoid-grid", cmd_sinusoid_grid, "Fig. 4a grid", provenance=True, checkpoint=True)
    s = add("linear-audit", cmd_linear_audit, "bisected stability boundary on linear regression", provenance=True)
    s.add_argument("--linear-reference", required=True)
    add("sinusoid-reference", cmd_sinusoid_reference, "Hessian spectrum at a meta-trained sinusoid point")
    add("fig1", cmd_fig1, "Fig. 1 training runs (every seed) and their task-gradient statistics",
        provenance=True, checkpoint=True)
    add("fig5-train", cmd_fig5_train, "Appendix B training run, with parameter snapshots", checkpoint=True)
    s = add("fig5-analysis", cmd_fig5_analysis, "exact T g and H^2 at every snapshot (Fig. 5)", provenance=True)
    s.add_argument("--snapshots", required=True)
    s = add("fetch-omniglot", cmd_fetch_omniglot, "Omniglot as the folder layout torchvision reads", out=False)
    s.add_argument("--root", required=True, help="the folder that will hold omniglot-py/")
    s = add("prepare-omniglot", cmd_prepare_omniglot, "Omniglot loaded through torchvision, 28x28, as .npz")
    s.add_argument("--root", required=True)
    s = add("prepare-miniimagenet", cmd_prepare_miniimagenet, "MiniImagenet split as .npz (84x84 RGB)")
    s.add_argument("--root", required=True, help="where the canonical archive is downloaded")
    s.add_argument("--split", default="train", choices=sorted(data.MINIIMAGENET_SPLITS))
    s = add("image-grid", cmd_image_grid, "Fig. 4b/4c grid, or one chunk of it", provenance=True,
            checkpoint=True)
    s.add_argument("--dataset", choices=sorted(experiments.IMAGE_DATASETS), required=True)
    s.add_argument("--chunk", type=int, help="this chunk's index, 0-based (with --chunks)")
    s.add_argument("--chunks", type=int, help="how many chunks the grid is split into")
    s.add_argument("--data", help="the prepared dataset (default: under the config's data.root)")
    s = add("image-merge", cmd_image_merge, "one grid table from the chunks of an image grid", provenance=True)
    s.add_argument("--dataset", choices=sorted(experiments.IMAGE_DATASETS), required=True)
    s.add_argument("--data", help="the prepared dataset (default: under the config's data.root)")
    s.add_argument("--chunks", nargs="+", required=True)
    s.add_argument("--chunk-provenance", nargs="*", default=[])
    s = add("claims", cmd_claims, "verdicts on the paper's claims", out=False)
    s.add_argument("--fig5", help="Fig. 5 curvature table (claim C6)")
    s.add_argument("--fig1", help="Fig. 1 gradient table (claim C1)")
    s.add_argument("--omniglot-grid", help="Fig. 4b grid (claim C4)")
    s.add_argument("--miniimagenet-grid", help="Fig. 4c grid (claim C5)")
    s.add_argument("--linear-reference", required=True)
    s.add_argument("--linear-audit", required=True)
    s.add_argument("--sinusoid-reference", required=True)
    s.add_argument("--linear-grids", nargs="+", required=True)
    s.add_argument("--sinusoid-grid", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-md", required=True)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # Snakemake and cluster schedulers stop jobs with SIGTERM


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except (config_mod.ConfigError, data.DataError) as e:
        print(f"maml-convergence: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("maml-convergence: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0

