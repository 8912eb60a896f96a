"""Scoring an experiment's rows: samples drawn once per run and setting (``samples_for_eval``), each
evaluation cached beside them, so a rerun reuses every number already computed."""

from __future__ import annotations

import json
from pathlib import Path

from difusion.experiments.spec import EvalSpec


def score_images(
    images,
    labels,
    folder: Path,
    *,
    features: tuple[str, ...],
    metrics: tuple[str, ...],
    reference: str = "fashion-mnist:test",
    n_reference: int | None = None,
    device="cpu",
    progress: bool = True,
) -> dict:
    """The metrics of ``images`` on each feature network, named by it (plus ``setup_FEATURES``:
    what was measured), each evaluation computed once into ``folder/eval-FEATURES.json``
    (``eval-FEATURES-SPLIT.json`` against a reference split other than test)."""
    from difusion.evaluation import evaluate, write_json

    row: dict = {}
    for feats in features:
        split = reference.partition(":")[2] or "test"
        out = Path(folder) / (
            f"eval-{feats}.json" if split == "test" else f"eval-{feats}-{split}.json"
        )
        cached = json.loads(out.read_text()) if out.exists() else None
        if cached is not None and cached["setup"].get("reference", reference) == reference:
            found, setup = cached["metrics"], cached["setup"]
        else:
            r = evaluate(
                images,
                labels,
                reference=reference,
                metrics=metrics,
                features=feats,
                n_reference=n_reference,
                device=device,
                progress=progress,
            )
            write_json(r, out)
            found, setup = r.metrics, r.setup
        # precision and recall depend on the feature network too: named after it, as FID and KID
        # already are, so two feature networks in one row do not overwrite each other
        row |= {f"{k}_{feats}" if k in ("precision", "recall") else k: v for k, v in found.items()}
        row["setup_" + feats] = setup
    return row


def score_run(run_dir: Path, ev: EvalSpec, device, progress: bool) -> dict:
    """Sample ``run_dir`` as ``ev`` says and score the samples against its dataset's
    ``ev.reference_split`` (test, or val for an experiment that chooses a setting): the row's
    sampler, steps, sampling seconds, metrics and (``ev.nll_images``) bits/dim."""
    from difusion.data.latents import image_dataset_of
    from difusion.evaluation import load_samples
    from difusion.metrics.nll import run_nll, write_nll
    from difusion.runs import samples_for_eval

    samples_path, run = samples_for_eval(
        run_dir,
        n=ev.n,
        steps=ev.steps,
        device=device,
        progress=progress,
        sampler=ev.sampler,
        eta=ev.eta,
        guidance=ev.guidance,
        variance=ev.variance,
    )
    sampler = ev.sampler + (f" eta={ev.eta:g}" if ev.sampler == "ddim" else "")
    row: dict = {"sampler": sampler + (f" {ev.variance}" if ev.variance else ""), "steps": ev.steps}
    folder = samples_path.parent
    timing = folder / "sampling_seconds.txt"
    row["sampling_s"] = float(timing.read_text()) if timing.exists() else None
    images, labels, _ = load_samples(samples_path)
    row |= score_images(
        images,
        labels,
        folder,
        features=ev.features,
        metrics=ev.metrics,
        reference=f"{image_dataset_of(run.config)}:{ev.reference_split}",
        n_reference=ev.n_reference,
        device=device,
        progress=progress,
    )
    if ev.nll_images:  # the run's bound in bits/dim on test images (its own variance), once
        out = run.run_dir / f"nll-n{ev.nll_images}.json"
        if out.exists():
            nll = json.loads(out.read_text())
        else:
            nll = run_nll(run, n=ev.nll_images, device=device, progress=progress)
            write_nll(nll, out)
        row |= {"bits_per_dim": nll["bits_per_dim"], "bpd_se": nll["standard_error"]}
    return row
