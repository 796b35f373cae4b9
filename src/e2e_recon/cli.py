"""The ``e2e-recon`` command: a thin Typer app.

Each command parses its options, builds a config where one is needed, and calls
one library function. Errors the user can fix are printed as one line and exit
with code 2; ``--debug`` shows the traceback instead. Library modules are
imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from e2e_recon import __version__
from e2e_recon.cli_data import check_data, download
from e2e_recon.cli_experiments import experiment_app
from e2e_recon.cli_precision import precision
from e2e_recon.cli_report import report
from e2e_recon.cli_support import (
    ConfigOpt,
    DeviceOpt,
    SetOpt,
    console,
    err_console,
    state,
    user_errors,
)
from e2e_recon.data.fetching.download import DOWNLOAD_HELP
from e2e_recon.errors import ConfigError

app = typer.Typer(
    name="e2e-recon",
    help="End-to-end deep image reconstruction from brain activity (Shen et al. 2019).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(experiment_app, name="experiment")


def _version(value: bool) -> None:
    if value:
        console.print(f"e2e-recon {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """End-to-end deep image reconstruction from brain activity (Shen et al. 2019)."""
    state["debug"] = state["debug"] or debug


def _presets_epilog() -> str:
    """Every preset of both simulator families, one line each, below the options."""
    from e2e_recon.sim.catalog import describe_presets

    lines = [f"[bold]{name}[/]  {what}" for name, what in describe_presets().items()]
    return "[bold]Presets[/]\n\n" + "\n".join(lines)


@app.command(epilog=_presets_epilog())
@user_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write the subject(s) into.")] = Path("sim"),
    preset: Annotated[
        str,
        typer.Option(help="Size and simulator family (the list below); prf-* is the pRF family."),
    ] = "demo",
    subjects: Annotated[
        int,
        typer.Option(
            help="Number of subjects (1-99): sub-01 ... sub-NN see the same stimuli and "
            "trials, each with its own voxels and noise."
        ),
    ] = 1,
    subject: Annotated[
        str | None,
        typer.Option(help="Subject name used in file names (default sub-01; only with one)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical data.")] = 0,
    snr: Annotated[
        float | None, typer.Option(help="Signal-to-noise ratio (default: calibrated).")
    ] = None,
) -> None:
    """Write simulated subjects in the layout of the real Kamitani data.

    Example: [bold]e2e-recon simulate --preset demo --subjects 3 --out data/sim[/]
    """
    from e2e_recon.sim.printing import print_experiment
    from e2e_recon.sim.subjects import simulate_subjects

    summary = simulate_subjects(out, preset, subjects, seed, snr, subject=subject)
    print_experiment(summary, console, preset)


@app.command("import")
@user_errors
def import_(
    source: Annotated[
        Path,
        typer.Argument(
            help=".mat, .npz or .h5 file of voxels (and images, labels); or a folder of NIfTI "
            "betas with a mask and a table, or a 4-D .nii/.nii.gz file."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write fmri/ and images/ into.")],
    subject: Annotated[str, typer.Option(help="Subject name used in file names.")] = "sub-01",
    voxels_key: Annotated[
        str, typer.Option(help="Array of voxels (samples x voxels); TRAIN,TEST for two arrays.")
    ] = "",
    labels_key: Annotated[
        str,
        typer.Option(help="Array saying which image each sample shows; 'none': one per sample."),
    ] = "",
    images_key: Annotated[
        str, typer.Option(help="Array of images (n, H, W[, 3]) or flat rows (n, H*W).")
    ] = "",
    split_key: Annotated[
        str, typer.Option(help="Array marking test samples (1) or 'train'/'test'.")
    ] = "",
    images_dir: Annotated[
        Path | None, typer.Option(help="Folder of stimulus images instead of an array.")
    ] = None,
    label_base: Annotated[
        int, typer.Option(help="First image index of the labels (1 for MATLAB-style indices).")
    ] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace existing fmri/ and images/.")] = False,
    images_shape: Annotated[
        str, typer.Option(help="HxW of flat images (default: the square they are).")
    ] = "",
    images_order: Annotated[
        str, typer.Option(help="Order of flat images: C (row-major) or F (MATLAB column-major).")
    ] = "C",
    set_name: Annotated[
        str, typer.Option(help="Name of the test set (default: the lab's natural images).")
    ] = "",
    mask: Annotated[
        Path | None, typer.Option(help="NIfTI: brain mask (default: mask.nii[.gz] beside it).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="NIfTI: TSV/CSV, one row per volume (default: found).")
    ] = None,
) -> None:
    """Turn your own recordings (.mat/.npz/.h5 arrays or NIfTI betas) into BData files and images.

    Example: [bold]e2e-recon import digits.mat --out data/digits --images-order F[/]
    """
    from e2e_recon.data.importing.importers import import_arrays
    from e2e_recon.data.importing.nifti import import_nifti, is_nifti_source

    if is_nifti_source(source):
        summary = import_nifti(
            source,
            out,
            subject=subject,
            mask=mask,
            table=table,
            images_dir=images_dir,
            set_name=set_name or None,
            overwrite=overwrite,
        )
    else:
        summary = import_arrays(
            source,
            out,
            subject=subject,
            voxels_key=voxels_key or None,
            labels_key=labels_key or None,
            images_key=images_key or None,
            split_key=split_key or None,
            images_dir=images_dir,
            label_base=label_base,
            overwrite=overwrite,
            images_shape=images_shape or None,
            images_order=images_order,
            set_name=set_name or None,
        )
    for key, value in summary.items():
        console.print(f"{key}: {value}")


@app.command()
@user_errors
def convert(
    model: Annotated[
        Path, typer.Argument(help="A .caffemodel (generator, discriminator, CaffeNet).")
    ],
    out: Annotated[Path, typer.Option(help="Output .pt file.")],
    prototxt: Annotated[Path | None, typer.Option(help="Its prototxt (optional).")] = None,
    kind: Annotated[str, typer.Option(help="auto, generator, discriminator or caffenet.")] = "auto",
) -> None:
    """Convert a released Caffe model into the project's .pt format.

    Example: [bold]e2e-recon convert net/sub-01/generator.caffemodel --out sub-01_generator.pt[/]
    """
    from e2e_recon.caffe.convert import convert_caffemodel

    path = convert_caffemodel(model, out, kind=kind, prototxt=prototxt)
    console.print(f"wrote {path}")


@app.command()
@user_errors
def train(
    config: ConfigOpt = "paper",
    set_: SetOpt = None,
    train_fmri: Annotated[
        list[Path] | None,
        typer.Option(help="Training BData .h5 file; once per subject with --config shared."),
    ] = None,
    test_fmri: Annotated[
        list[Path] | None, typer.Option(help="Test BData .h5 file(s), for progress grids.")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of stimulus images.")] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option(help="Subject of each --train-fmri, in order (default: the file names)."),
    ] = None,
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="With --config adapt: the source generator (a run folder, .pt or .caffemodel).",
        ),
    ] = "",
    source_fmri: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --config adapt: the source subjects' training files, for the fitted "
            "starts (a released generator needs them; a run folder names its own).",
        ),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Parent of numbered run folders.")] = Path("runs"),
    run_dir: Annotated[
        Path | None, typer.Option(help="Exact run folder (default: numbered).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder.")] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Clear a --run-dir holding a run (only its run files), then start anew."),
    ] = False,
    device: DeviceOpt = "",
    dry_run: Annotated[bool, typer.Option(help="Print the resolved config and exit.")] = False,
) -> None:
    """Train a generator from fMRI to images with the DeePSiM losses.

    Example: [bold]e2e-recon train --config paper --train-fmri sub-01_..._Training_original_VC.h5
    --images stimuli/ --set train.batch_size=32[/]

    Several subjects: [bold]--config shared --train-fmri sub-01_... --train-fmri sub-02_...[/];
    a new subject: [bold]--config adapt --from RUN_OR_GENERATOR --train-fmri sub-04_...[/]
    """
    from e2e_recon.commands import prepare_train

    cfg, target, created = prepare_train(
        config, set_ or [], train_fmri, test_fmri, images, device, runs_dir, run_dir, resume,
        dry_run, overwrite=overwrite, subjects=subject or [], adapt_from=from_,
        source_fmri=source_fmri or [],
    )  # fmt: skip
    if target is None:
        return
    from e2e_recon.run_folder import removed_if_refused
    from e2e_recon.train.loop import train as run_training
    from e2e_recon.train.stopping import signal_exit_code

    with removed_if_refused(target, created) if resume is None else contextlib.nullcontext():
        summary = run_training(cfg, target, resume=resume is not None)
    console.print_json(data=summary)
    code = signal_exit_code(summary)
    if code:  # the snapshot is written, but the generator is not fully trained
        err_console.print(
            f"stopped by a signal at iteration {summary['iterations']}; "
            f"continue with --resume {target}"
        )
        raise typer.Exit(code=code)


@app.command()
@user_errors
def reconstruct(
    generator: Annotated[
        str, typer.Option(help="Run folder, .pt, .caffemodel, or a folder of snapshots.")
    ] = "",
    test_fmri: Annotated[list[Path] | None, typer.Option(help="Test BData .h5 file(s).")] = None,
    train_fmri: Annotated[
        Path | None, typer.Option(help="Training file, for z-scoring when the model lacks stats.")
    ] = None,
    roi: Annotated[
        str, typer.Option(help="Voxel selection (default: the model's own, else 'ROI_VC = 1').")
    ] = "",
    subject: Annotated[
        str,
        typer.Option(
            help="The subject: its files in the data home where not given, and its input "
            "layer of a shared generator (default: the test file's name, sub-NN_...)."
        ),
    ] = "",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("recon"),
    ridge: Annotated[bool, typer.Option(help="Also reconstruct with the ridge baseline.")] = False,
    images: Annotated[Path | None, typer.Option(help="Stimulus images (for --ridge).")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Reconstruct test images from fMRI with a trained or released generator.

    Example: [bold]e2e-recon reconstruct --generator runs/00000-sub-01-paper --test-fmri
    sub-01_perceptionNaturalImageTest_original_VC.h5 --out recon/[/]
    """
    from e2e_recon.fileio import check_writable
    from e2e_recon.recon.pipeline import reconstruct_cli

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the reconstructions")
    check_writable(out, "--out")
    index = reconstruct_cli(
        generator=generator,
        test_fmri=test_fmri or [],
        train_fmri=train_fmri,
        roi=roi,
        subject=subject or None,
        out=out,
        ridge=ridge,
        images_dir=images,
        device=device,
    )
    console.print(f"wrote {index}")


@app.command()
@user_errors
def evaluate(
    recon: Annotated[Path, typer.Option(help="Folder written by 'reconstruct'.")],
    images: Annotated[Path, typer.Option(help="Folder of stimulus images.")],
    resolution_px: Annotated[
        int | None,
        typer.Option(
            help="Common resolution for a second pixel score (0: skip; default: as recorded "
            "by 'reconstruct', else 64)."
        ),
    ] = None,
    image_size_px: Annotated[
        int | None,
        typer.Option(
            help="Stimuli are resized to this, as in training. Default: the geometry.json "
            "'reconstruct' wrote (the run's data.image_size_px), else 248. Overrides it."
        ),
    ] = None,
    crop_px: Annotated[
        int | None,
        typer.Option(help="...then centre-cropped (default: as recorded, else 227)."),
    ] = None,
    feature_net: Annotated[
        list[str] | None,
        typer.Option(help="Feature network(s) for identification, or 'none'."),
    ] = None,
    alexnet: Annotated[
        Path | None,
        typer.Option(help="torchvision AlexNet weights (alexnet-owt-*.pth): adds AlexNet(2)/(5)."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap samples for intervals.")] = 1000,
    ci: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    device: DeviceOpt = "auto",
    suite: Annotated[
        list[str] | None,
        typer.Option(
            help="default, nsd (the NSD benchmark's eight numbers) or kamitani (the lab's "
            "identification analyses); repeatable. Networks: `download eval-nets`."
        ),
    ] = None,
    n_way: Annotated[
        str, typer.Option(help="kamitani: n of the n-way identifications.")
    ] = "2,5,10",
    distractors: Annotated[
        Path | None,
        typer.Option(help="kamitani: folder of distractor images (default: the set's others)."),
    ] = None,
    dest: Annotated[
        Path | None, typer.Option(help="Data home with weights/ (default: E2E_RECON_HOME).")
    ] = None,
    nsd_resize: Annotated[
        str,
        typer.Option(
            help="nsd: 'antialias' (default) or 'notebook' (no antialiasing, as MindEye's "
            "published notebook resized) to match a published table."
        ),
    ] = "antialias",
) -> None:
    """Score reconstructions: identification, PixCorr, SSIM, feature identification.

    Example: [bold]e2e-recon evaluate --recon recon/ --images stimuli/[/]
    (add [bold]--suite nsd --suite kamitani[/] for the published tables)
    """
    from e2e_recon.console_output import print_table
    from e2e_recon.data.geometry import read_geometry
    from e2e_recon.evaluate.evaluate import (
        DEFAULT_FEATURE_NETS,
        FeatureNet,
        alexnet_feature_net,
        evaluate_recon,
        metrics_table,
    )
    from e2e_recon.evaluate.paired import comparisons_table
    from e2e_recon.evaluate.suites import SuiteOptions, parse_n_way, parse_suites, suite_tables
    from e2e_recon.fileio import reporting_write_errors

    suites = parse_suites(suite or [])
    options = SuiteOptions(
        home=dest, n_way=parse_n_way(n_way), distractors_dir=distractors, nsd_resize=nsd_resize
    )
    if resolution_px is None:
        recorded = read_geometry(recon)
        resolution_px = recorded.resolution_px if recorded else 64
    names = tuple(feature_net or DEFAULT_FEATURE_NETS)
    nets: list[str | FeatureNet] = [] if "none" in names else list(names)
    if alexnet is not None:
        nets.append(alexnet_feature_net(alexnet))
    with reporting_write_errors(recon, any_oserror=False):  # a full disk: one line
        result = evaluate_recon(
            recon,
            images,
            resolution_px=resolution_px or None,
            feature_nets=nets,
            n_boot=bootstrap,
            seed=seed,
            ci=ci,
            device=device,
            stimulus_resize_px=image_size_px,
            stimulus_crop_px=crop_px,
            suites=suites,
            suite_options=options,
        )
    for notice in result["notices"]:
        err_console.print(f"note: {notice}", highlight=False, soft_wrap=True)
    if "default" in suites:
        print_table(console, metrics_table(result))
        if (paired := comparisons_table(result)) is not None:
            print_table(console, paired)
    for table in suite_tables(result):
        print_table(console, table)
    if "default" in suites:
        console.print(f"wrote {recon / 'metrics.json'} and {recon / 'per_image.csv'}")
    else:
        console.print(f"wrote {recon / 'metrics.json'}")


app.command()(report)


@app.command()
@user_errors
def demo(
    quick: Annotated[bool, typer.Option(help="A one-minute smoke version.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: numbered).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    comparator: Annotated[
        str, typer.Option(help="Comparator weights: a CaffeNet .caffemodel or AlexNet .pth.")
    ] = "",
    device: DeviceOpt = "auto",
) -> None:
    """Run the whole method on a simulated subject: simulate, train, reconstruct, evaluate, report.

    Example: [bold]e2e-recon demo[/]  (or [bold]e2e-recon demo --quick[/] for a smoke test)
    """
    from e2e_recon.demo import run_demo

    run_demo(out=out, quick=quick, seed=seed, comparator=comparator or None, device=device)


app.command(help=DOWNLOAD_HELP)(download)
app.command("check-data")(check_data)
app.command("precision")(precision)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="e2e-recon")


if __name__ == "__main__":  # pragma: no cover
    main()
