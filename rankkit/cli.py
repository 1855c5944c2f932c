"""The ``rankkit`` command line: datasets, index, retrieve, eval, experiment, reproduce, train, adapters.

Every command reads the same dataclass configs as the Python API (pipeline YAMLs in
``pipelines/``, experiment YAMLs in ``eval/``), takes ``--seed``, and writes result
files atomically with a run card beside them. Errors from bad input print one clear
line (file, line or key) and exit with status 2.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from rankkit.errors import RankkitError

log = logging.getLogger("rankkit")


_VERBOSITY = 0  # set by the group callback; main() shows full tracebacks at -vv


def _setup_logging(verbose: int) -> None:
    global _VERBOSITY
    _VERBOSITY = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rankkit").setLevel(level)
    for noisy in ("faiss.loader", "sentence_transformers", "ir_datasets"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for debug.")
@click.version_option(package_name="rankkit")
def app(verbose: int) -> None:
    """rankkit: retrieval, reranking and evaluation for IR research."""
    _setup_logging(verbose)


def _load(dataset: str, split: str | None) -> Any:
    from rankkit.data import load_dataset

    return load_dataset(dataset, split=split)


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if not shard:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected i/n (e.g. 0/4), got {shard!r}", param_hint="--shard") from None
    if not 0 <= i < n:
        raise click.BadParameter(f"need 0 <= i < n, got {shard!r}", param_hint="--shard")
    return i, n


@app.command("datasets")
def datasets_cmd() -> None:
    """List the datasets that load offline right now (data dir and ir_datasets cache)."""
    from tabulate import tabulate

    from rankkit import settings
    from rankkit.data import available_datasets

    rows = [[d["id"], d.get("docs", ""), d.get("queries", ""), d.get("qrels", ""), d["source"]]
            for d in available_datasets()]
    click.echo(f"RANKKIT_DATA_DIR = {settings.data_dir() or '(not set)'}")
    click.echo(tabulate(rows, headers=["id", "docs", "queries", "qrels", "source"], tablefmt="github")
               if rows else "no dataset available offline; set RANKKIT_DATA_DIR")


def _ray_options(fn: Any) -> Any:
    """The --ray options shared by `index` and `retrieve`."""
    fn = click.option("--ray-block-size", type=click.IntRange(min=1), default=None,
                      help="Ray: queries (retrieve) or documents (index) per task.")(fn)
    fn = click.option("--ray-workers", type=click.IntRange(min=1), default=None,
                      help="Ray: number of workers (default: the cluster's CPUs).")(fn)
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                        help="Run on Ray: alone, a local cluster; or a cluster address (host:port, ray://..., "
                             "auto). Needs the ray extra.")(fn)


def _ray_settings(address: str | None, workers: int | None, block_size: int | None, default_block: int) -> Any:
    """Ray settings from the CLI options, checked (address reachable) before any work; None without --ray."""
    if address is None:
        if workers is not None or block_size is not None:
            raise click.UsageError("--ray-workers and --ray-block-size need --ray")
        return None
    from rankkit.scale.ray_backend import RaySettings, check_address

    check_address(address)
    return RaySettings(address=address, workers=workers, block_size=block_size or default_block)


@app.command("index")
@click.argument("dataset")
@click.option("--split", default=None, help="Split of a local BEIR folder (the corpus is the same for all).")
@click.option("--kind", type=click.Choice(["lucene", "dense"]), default="lucene", show_default=True)
@click.option("--multifield", is_flag=True, help="Lucene: index title and text as separate fields.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--model", default="sentence-transformers/all-MiniLM-L6-v2", show_default=True,
              help="Dense: encoder (HF id or local path).")
@click.option("--output", type=click.Path(), default=None, help="Index folder (default: rankkit's cache).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_ray_options
def index_cmd(dataset: str, split: str | None, kind: str, multifield: bool, threads: int, model: str,
              output: str | None, quiet: bool, ray_address: str | None, ray_workers: int | None,
              ray_block_size: int | None) -> None:
    """Build (or find in the cache) the index of DATASET's corpus and print its path.

    With --kind dense --ray the corpus is encoded in blocks on Ray workers, into one FAISS index.
    """
    ray_settings = _ray_settings(ray_address, ray_workers, ray_block_size, 1024)
    if ray_settings is not None and kind != "dense":
        raise click.UsageError("--ray encodes a dense index: use it with --kind dense")
    ds = _load(dataset, split)
    if kind == "lucene":
        from rankkit.index.lucene import LuceneIndex

        index = LuceneIndex.build(ds, output, multifield=multifield, threads=threads)
        click.echo(f"{index.path}\t{index.num_docs()} docs")
    else:
        from rankkit.retrieve.dense import Dense

        stage = Dense(ds, model=model, show_progress=not quiet)
        if ray_settings is not None:
            from rankkit.scale.ray_encode import build_dense_index_on_ray

            index = build_dense_index_on_ray(stage, ray_settings, show_progress=not quiet)
        else:
            index = stage.index  # built (encoding the corpus) or loaded from the cache
        path = index.save(output) if output else stage.index_path
        click.echo(f"{path}\t{len(index)} docs")


@app.command("retrieve")
@click.option("--pipeline", "pipeline_path", required=True, type=click.Path(), help="Pipeline YAML.")
@click.option("--dataset", required=True, help="ir_datasets id, BEIR folder or queries file.")
@click.option("--split", default=None)
@click.option("--output", required=True, type=click.Path(), help="TREC run file to write.")
@click.option("--tag", default=None, help="Run tag (default: the pipeline name).")
@click.option("--shard", default=None, help="i/n: run only every n-th query starting at i (merge with cat).")
@click.option("--num-queries", type=int, default=None, help="Only the first N queries (smoke runs).")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache stage outputs here.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_ray_options
def retrieve_cmd(pipeline_path: str, dataset: str, split: str | None, output: str, tag: str | None,
                 shard: str | None, num_queries: int | None, cache_dir: str | None, seed: int, quiet: bool,
                 ray_address: str | None, ray_workers: int | None, ray_block_size: int | None) -> None:
    """Run a pipeline YAML on a dataset's queries and write a TREC run (plus a run card JSON).

    With --ray the queries run in blocks on Ray workers (a local cluster, or the one at ADDRESS).
    """
    from rankkit.pipeline import Pipeline
    from rankkit.runcard import run_card, seed_everything, write_json

    seed_everything(seed)
    ray_settings = _ray_settings(ray_address, ray_workers, ray_block_size, 32)
    ds = _load(dataset, split)
    queries = ds.queries[:num_queries] if num_queries else ds.queries
    parts = _parse_shard(shard)
    if parts:
        queries = queries[parts[0]::parts[1]]
    overrides: dict[str, Any] = {"show_progress": not quiet}
    if cache_dir:
        overrides["cache_dir"] = cache_dir
    pipeline: Any
    if ray_settings is not None:
        from rankkit.scale.ray_backend import RayPipeline

        pipeline = RayPipeline(pipeline_path, dataset, split, ray_settings, seed=seed, show_progress=not quiet,
                               **{k: v for k, v in overrides.items() if k != "show_progress"})
    else:
        pipeline = Pipeline.from_yaml(pipeline_path, ds, **overrides)
    t0 = time.perf_counter()
    run = pipeline(queries)
    wall = time.perf_counter() - t0
    run.to_trec(output, tag=tag or pipeline.name.replace(" ", "_"))
    card = run_card({"pipeline": str(pipeline_path), "dataset": dataset, "split": split, "shard": shard,
                     "num_queries": len(queries),
                     "ray": None if ray_settings is None else vars(ray_settings)}, seed, wall)
    stats = pipeline.stats()
    if stats:
        card["stages"] = stats
    write_json(card, f"{output}.json")
    click.echo(f"wrote {output} ({len(run)} queries, {wall:.1f}s)")


@app.command("eval")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--qrels", required=True, help="Qrels file (TREC/BEIR TSV) or a dataset id/folder.")
@click.option("--split", default=None, help="Split when --qrels is a dataset.")
@click.option("-m", "--metric", "metrics", multiple=True, help="ranx metric, repeatable (default ndcg@10, recall@100, mrr@10).")
@click.option("--baseline", default=None, help="Run name (file stem) to test against (default: the first run).")
@click.option("--stat-test", type=click.Choice(["student", "fisher", "tukey"]), default="student", show_default=True)
@click.option("--correction", type=click.Choice(["holm", "bonferroni", "none"]), default="holm", show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--output", type=click.Path(), default=None, help="Write a JSON report with a run card.")
@click.option("--seed", type=int, default=42, show_default=True)
def eval_cmd(runs: tuple[str, ...], qrels: str, split: str | None, metrics: tuple[str, ...], baseline: str | None,
             stat_test: str, correction: str, alpha: float, output: str | None, seed: int) -> None:
    """Evaluate TREC run files against qrels; with several runs, test each against the baseline."""
    from tabulate import tabulate

    from rankkit.evaluate import DEFAULT_METRICS, compare, evaluate
    from rankkit.runcard import run_card, write_json
    from rankkit.types import Qrels, Run

    t0 = time.perf_counter()
    qrels_obj = Qrels.from_trec(qrels) if Path(qrels).is_file() else _load(qrels, split).qrels
    loaded = [Run.from_trec(p) for p in runs]
    metric_list = list(metrics) or list(DEFAULT_METRICS)
    report: dict[str, Any]
    if len(loaded) == 1:
        values = evaluate(loaded[0], qrels_obj, metric_list)
        # disable_numparse: tabulate would re-parse "0.6050" as a number and print 0.605
        click.echo(tabulate([[loaded[0].name, *[f"{values[m]:.4f}" for m in metric_list]]],
                            headers=["run", *metric_list], tablefmt="github", disable_numparse=True))
        report = {"results": {loaded[0].name: values}}
    else:
        comparison = compare(loaded, qrels_obj, metric_list, baseline=baseline, stat_test=stat_test,
                             correction=correction, alpha=alpha, seed=seed)
        click.echo(comparison.table())
        report = comparison.to_dict()
    if output:
        report["run_card"] = run_card({"runs": list(runs), "qrels": qrels}, seed, time.perf_counter() - t0)
        write_json(report, output)


@app.command("experiment")
@click.argument("config", type=click.Path())
@click.option("--num-queries", type=int, default=None, help="Only the first N queries (smoke runs).")
@click.option("--output", type=click.Path(), default=None, help="Override the report path.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache stage outputs here.")
@click.option("--seed", type=int, default=None, help="Override the config's seed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def experiment_cmd(config: str, num_queries: int | None, output: str | None, cache_dir: str | None,
                   seed: int | None, quiet: bool) -> None:
    """Run the pipelines of an experiment YAML on its dataset and print the comparison table."""
    from tabulate import tabulate

    from rankkit.experiment import load_experiment, run_experiment

    cfg = load_experiment(config)
    if num_queries:
        cfg.num_queries = num_queries
    if output:
        cfg.output = str(Path(output).resolve())
    if seed is not None:
        cfg.seed = seed
    result = run_experiment(cfg, base_dir=Path(config).parent, show_progress=not quiet, cache_dir=cache_dir)
    click.echo(f"\n{result.report['dataset']} ({result.report['num_queries']} queries)")
    if result.comparison is not None:
        click.echo(result.comparison.table())
    else:
        (name, vals), = result.means.items()
        click.echo(tabulate([[name, *vals.values()]], headers=["run", *vals], tablefmt="github", floatfmt=".4f"))
    if cfg.output:
        click.echo(f"report: {Path(config).parent / cfg.output}")


@app.command("reproduce")
@click.argument("matrix", type=click.Path(), default="eval/reproduction.yaml")
@click.option("--only", default=None, help="Only rows whose name contains this text.")
@click.option("--output", type=click.Path(), default=None, help="Write the results as JSON with a run card.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def reproduce_cmd(matrix: str, only: str | None, output: str | None, quiet: bool) -> None:
    """Check expected figures (reproduction matrix); exit 1 when any figure drifts."""
    from tabulate import tabulate

    from rankkit.experiment import check_matrix
    from rankkit.runcard import run_card, write_json

    t0 = time.perf_counter()
    results = check_matrix(matrix, show_progress=not quiet, only=only)
    rows = [[r["name"], r["metric"], f"{r['expected']:.4f}", f"{r['measured']:.4f}", f"±{r['tolerance']}",
             "ok" if r["ok"] else "DRIFT"] for r in results]
    click.echo(tabulate(rows, headers=["row", "metric", "expected", "measured", "tolerance", "status"],
                        tablefmt="github", disable_numparse=True))
    if output:
        write_json({"results": results, "run_card": run_card({"matrix": matrix}, None, time.perf_counter() - t0)},
                   output)
    bad = [r for r in results if not r["ok"]]
    if not results:
        raise click.ClickException("no rows matched")
    if bad:
        click.echo(f"{len(bad)} figure(s) drifted outside tolerance", err=True)
        sys.exit(1)


from rankkit.cli_robust import register as _register_robust
from rankkit.cli_synth import register as _register_synth
from rankkit.cli_train import register as _register_train

_register_train(app)
_register_synth(app)
_register_robust(app)


def _one_line(message: object) -> str:
    """A message on one line (multi-line messages joined with '; '), at most 2,000 characters."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text if len(text) <= 2000 else text[:1997] + "..."


def _write_traceback() -> Path | None:
    """Write the current exception's traceback to a file in the temp folder; its path, or None."""
    import tempfile
    import traceback

    try:
        fd, name = tempfile.mkstemp(prefix=f"rankkit-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with open(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"rankkit {' '.join(sys.argv[1:])}\n\n")
            traceback.print_exc(file=fh)
        return Path(name)
    except OSError:
        return None


def main() -> None:
    """Console entry point: one line per error, never a raw traceback unless ``-vv``.

    Bad input (a :class:`RankkitError`, a click usage error, a file the OS refuses) prints
    ``error: <what is wrong>`` and exits 2. An unexpected internal error prints one line
    and the path of a file holding the full traceback, and exits 1; with ``-vv`` the
    traceback is printed instead.
    """
    try:
        app(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except RankkitError as exc:
        if _VERBOSITY >= 2:
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except OSError as exc:  # a path the OS refuses (missing, a folder, no permission, disk full)
        if _VERBOSITY >= 2:
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:
        if _VERBOSITY >= 2:
            raise
        where = _write_traceback()
        tail = f" (full traceback: {where}; or run again with -vv)" if where else " (run again with -vv)"
        click.echo(f"internal error: {type(exc).__name__}: {_one_line(exc)[:500]}{tail}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
