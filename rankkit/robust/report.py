"""The two robustness jobs behind ``rankkit certify`` and ``rankkit attack``, and their reports.

:func:`run_certify` smooths a ranker over a dataset's candidate lists for each N, certifies
every query at each K (:mod:`rankkit.robust.certify`), evaluates clean effectiveness of the
first stage, the base ranker and the smoothed ranker beside it, and (``attack``) checks
soundness: the document at rank K + 1 of each query is attacked, and a certified query must
never see it enter the top K. :func:`run_attack` writes the robustness report ("Are Neural
Ranking Models Robust?", Wu et al. 2021, arXiv 2108.05018, its adversarial view): every ranker
reranks the same candidates, the same target is attacked under the same budget, and the
success rate and mean rank gain sit beside clean nDCG@10. Each job writes ``<name>.json``
(with a run card), ``<name>.md`` and a plot (``crq.png``: CRQ against K; ``attack.png``: success and
clean nDCG@10 per ranker) into its output folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rankkit.errors import ConfigError
from rankkit.pipeline import Pipeline, Stage
from rankkit.robust.attack import greedy_attack
from rankkit.robust.certify import certify, hoeffding_margin, ranked
from rankkit.robust.perturb import PerturbationTable, build_table
from rankkit.robust.smoothing import SmoothedRanker, first_words, text_scorer
from rankkit.types import Qrels, Query, Run

if TYPE_CHECKING:
    from rankkit.data.dataset import Dataset
    from rankkit.robust.config import AttackJobConfig, CertifyConfig, SetsSettings

log = logging.getLogger(__name__)


def _path(value: str, base: Path) -> Path:
    return Path(value) if Path(value).is_absolute() else base / value


def _queries(dataset: Dataset, limit: int | None) -> list[Query]:
    queries = sorted(dataset.queries, key=lambda q: q.qid)
    judged = [q for q in queries if dataset.qrels.get(q.qid)] or queries
    return judged[:limit] if limit else judged


def split_pipeline(path: Path, dataset: Dataset, show_progress: bool) -> tuple[Stage, Stage]:
    """(candidate stage, ranker): all stages but the last, and the last (a lone retriever is both)."""
    pipe = Pipeline.from_yaml(path, dataset, show_progress=show_progress)
    stages = pipe.stages
    if len(stages) == 1:
        return stages[0], stages[0]
    return Pipeline(stages[:-1]), stages[-1]


def candidates(stage: Stage, queries: list[Query], depth: int, need: int) -> Run:
    """The top ``depth`` of ``stage``'s run; every query needs at least ``need`` candidates."""
    run = stage(queries).top_k(depth)
    short = [(q.qid, len(run.get(q.qid, {}))) for q in queries if len(run.get(q.qid, {})) < need]
    if short:
        qid, n = short[0]
        raise ConfigError(f"query {qid} has {n} candidates, fewer than the {need} needed (the largest K plus one); "
                          f"{len(short)} queries are short: lower K or use a deeper first stage")
    return run


def perturbation_table(sets: SetsSettings, dataset: Dataset, base: Path,
                       cache: Path | None = None) -> PerturbationTable:
    """The table of ``sets``: its file, or built from the dataset's corpus (kept under ``cache`` for reuse)."""
    from rankkit.cache import content_key

    if sets.table:
        return PerturbationTable.load(_path(sets.table, base))
    path = None
    if cache is not None:
        key = content_key({"perturbation": asdict(sets.perturbation), "corpus": dataset.fingerprint()})
        path = cache / "perturbation" / f"{key}.json"
        if path.is_file():
            log.info("perturbation sets from %s", path)
            return PerturbationTable.load(path)
    table = build_table((d.contents for d in dataset.docs_iter()), sets.perturbation)
    if path is not None:
        table.save(path)
    return table


def _ndcg(run: Run, dataset: Dataset) -> float:
    """nDCG@10 over the run's judged queries (the job's query subset, not the whole split)."""
    from rankkit.evaluate import evaluate

    qrels = Qrels({q: dataset.qrels[q] for q in run if dataset.qrels.get(q)})
    return float(evaluate(run, qrels, ["ndcg@10"])["ndcg@10"])


def _texts(dataset: Dataset, run: Run, max_words: int | None) -> dict[str, str]:
    ids = list(dict.fromkeys(d for qid in run for d in run[qid]))
    found = dataset.docs(ids)
    return {d: first_words(found[d].contents, max_words) for d in ids}


@dataclass
class _Job:
    """What both jobs start from: the dataset, the queries, the candidate lists, the sets and the texts."""

    out_dir: Path
    dataset: Dataset
    queries: list[Query]
    candidates: Run
    ranker: Stage
    cache: Path
    table: PerturbationTable
    texts: dict[str, str]

    @classmethod
    def prepare(cls, cfg: CertifyConfig | AttackJobConfig, base: Path, pipeline: str, need: int,
                show_progress: bool) -> _Job:
        """Load the dataset, run ``pipeline``'s candidate stage (``need`` candidates a query), get the sets."""
        from rankkit.data import load_dataset

        out_dir = _path(cfg.output, base)
        dataset = load_dataset(cfg.dataset, cfg.split)
        queries = _queries(dataset, cfg.queries)
        first, ranker = split_pipeline(_path(pipeline, base), dataset, show_progress)
        cand = candidates(first, queries, cfg.depth, need)
        cache = _path(cfg.cache_dir, base) if cfg.cache_dir else out_dir / "cache"
        table = perturbation_table(cfg.sets, dataset, base, cache)
        return cls(out_dir, dataset, queries, cand, ranker, cache, table, _texts(dataset, cand, cfg.max_words))


def run_certify(cfg: CertifyConfig, base: Path, show_progress: bool = True) -> dict[str, Any]:
    """Certify a smoothed ranker (see the module docstring); writes and returns the report."""
    t0 = time.time()
    ks = cfg.cutoffs
    job = _Job.prepare(cfg, base, cfg.pipeline, max(ks + [cfg.attack_k]) + 1, show_progress)
    out_dir, dataset, queries, cand, cache, table, texts = (job.out_dir, job.dataset, job.queries, job.candidates,
                                                             job.cache, job.table, job.texts)
    ranker = job.ranker
    bounds = {d: table.bound(t) for d, t in texts.items()}
    report: dict[str, Any] = {
        "dataset": cfg.dataset, "queries": len(queries), "depth": cfg.depth, "ks": ks, "alpha": cfg.alpha,
        "rule": cfg.rule, "sets": table.stats(), "first_stage_ndcg@10": _ndcg(cand, dataset),
        "bounds": {"mean": float(np.mean(list(bounds.values()))), "median": float(np.median(list(bounds.values()))),
                   "zero": float(np.mean([b == 0.0 for b in bounds.values()])),
                   "unperturbable": sum(not table.perturbable(t) for t in texts.values())},
        "by_samples": {}}
    for n in sorted(cfg.samples):
        t1 = time.time()
        smooth = SmoothedRanker(dataset, base=ranker, table=table, samples=n, seed=cfg.seed, depth=cfg.depth,
                                keep_tail=False, cache_dir=str(cache), max_words=cfg.max_words,
                                batch_size=cfg.batch_size, show_progress=show_progress, name=f"smoothed-N{n}")
        g_run = smooth(queries, cand)
        eps = hoeffding_margin(n, cfg.alpha)
        radii = {qid: {k: certify(g_run[qid], bounds, k, eps, cfg.rule).radius for k in ks} for qid in g_run}
        entry: dict[str, Any] = {
            "margin": eps, "crq": {k: float(np.mean([radii[q][k] > 0 for q in radii])) for k in ks},
            "clean": {"base_ndcg@10": _ndcg(Run(smooth.base_scores), dataset), "smoothed_ndcg@10": _ndcg(g_run, dataset)},
            "pairs": smooth.stats["pairs"], "pairs_scored": smooth.stats["scored"],
            "minutes": (time.time() - t1) / 60, "radius": radii}
        if cfg.attack is not None:
            entry["attack"] = _soundness(cfg, smooth, g_run, texts, queries, bounds, eps)
        report["by_samples"][str(n)] = entry
        log.info("N=%d: CRQ %s", n, {k: round(v, 3) for k, v in entry["crq"].items()})
    report["minutes"] = (time.time() - t0) / 60
    write_certify_report(report, cfg, out_dir)
    return report


def _soundness(cfg: CertifyConfig, smooth: SmoothedRanker, g_run: Run, texts: dict[str, str], queries: list[Query],
               bounds: dict[str, float], eps: float) -> dict[str, Any]:
    """Attack the document at rank K + 1 of every query (chosen on the base ranker, judged by g)."""
    assert cfg.attack is not None
    k = cfg.attack_k
    qtext = {q.qid: q.text for q in queries}
    rows = []
    for qid in g_run:
        order = ranked(g_run[qid])
        target, kth = order[k], order[k - 1]
        crafted = greedy_attack(qtext[qid], texts[target], float("inf"), smooth.table, smooth.raw_scores,
                                cfg.attack)
        g_adv = float(smooth.smoothed_scores(qtext[qid], [crafted.text])[0])
        rows.append({"qid": qid, "certified": certify(g_run[qid], bounds, k, eps, cfg.rule).certified,
                     "substitutions": len(crafted.substitutions), "base_gain": crafted.score - crafted.original_score,
                     "g_before": g_run[qid][target], "g_after": g_adv, "g_kth": g_run[qid][kth],
                     "success": g_adv > g_run[qid][kth]})
    cert = [r for r in rows if r["certified"]]
    unc = [r for r in rows if not r["certified"]]
    return {"k": k, "certified": len(cert), "certified_successes": sum(r["success"] for r in cert),
            "uncertified": len(unc), "uncertified_successes": sum(r["success"] for r in unc), "rows": rows}


def write_certify_report(report: dict[str, Any], cfg: CertifyConfig, out_dir: Path) -> None:
    """``certify.json`` (with a run card), ``certify.md`` and ``crq.png`` in ``out_dir``."""
    from rankkit.runcard import run_card, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({**report, "card": run_card(asdict(cfg), cfg.seed, report["minutes"] * 60)}, out_dir / "certify.json")
    ks = report["ks"]
    lines = [f"# Certified top-K robustness: {report['dataset']}", "",
             f"{report['queries']} queries, {report['depth']} candidates each, alpha {report['alpha']}, "
             f"rule {report['rule']}; perturbable words {report['sets']['perturbable_words']}; "
             f"o_d mean {report['bounds']['mean']:.3f}, median {report['bounds']['median']:.3f}, "
             f"o_d = 0 for {report['bounds']['zero']:.0%} of candidates; first stage nDCG@10 "
             f"{report['first_stage_ndcg@10']:.4f}.", "",
             "| N | margin | " + " | ".join(f"CRQ@{k}" for k in ks) + " | base nDCG@10 | smoothed nDCG@10 | "
             "pairs | scored | min |", "|" + "---|" * (len(ks) + 7)]
    for n, e in report["by_samples"].items():
        lines.append(f"| {n} | {e['margin']:.3f} | " + " | ".join(f"{e['crq'][k]:.3f}" for k in ks)
                     + f" | {e['clean']['base_ndcg@10']:.4f} | {e['clean']['smoothed_ndcg@10']:.4f} | {e['pairs']} | "
                     f"{e['pairs_scored']} | {e['minutes']:.1f} |")
    attacks = [(n, e["attack"]) for n, e in report["by_samples"].items() if "attack" in e]
    if attacks:
        lines += ["", "Soundness check: the document at rank K + 1 attacked (substitutions chosen on the base "
                  "ranker, success judged by the smoothed score against the K-th).", "",
                  "| N | K | certified queries | successes | uncertified queries | successes |", "|---|---|---|---|---|---|"]
        lines += [f"| {n} | {a['k']} | {a['certified']} | {a['certified_successes']} | {a['uncertified']} | "
                  f"{a['uncertified_successes']} |" for n, a in attacks]
    (out_dir / "certify.md").write_text("\n".join(lines) + "\n")
    _plot(report, out_dir / "crq.png")


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for n, e in report["by_samples"].items():
        ax.plot(report["ks"], [e["crq"][k] for k in report["ks"]], marker="o", label=f"N = {n}")
    ax.set_xlabel("K")
    ax.set_ylabel("certified robust query ratio")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title(f"CRQ@K, {report['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_attack(cfg: AttackJobConfig, base: Path, show_progress: bool = True) -> dict[str, Any]:
    """The robustness report (module docstring); writes ``attack.json`` and ``attack.md``, returns the report."""
    from rankkit.runcard import run_card, write_json

    t0 = time.time()
    job = _Job.prepare(cfg, base, cfg.candidates, cfg.target_rank, show_progress)
    out_dir, dataset, queries, cand, cache, table, texts = (job.out_dir, job.dataset, job.queries, job.candidates,
                                                             job.cache, job.table, job.texts)
    qtext = {q.qid: q.text for q in queries}
    report: dict[str, Any] = {"dataset": cfg.dataset, "queries": len(queries), "depth": cfg.depth, "k": cfg.k,
                              "target_rank": cfg.target_rank, "budget": asdict(cfg.attack), "rankers": {}}
    for name, spec in cfg.rankers.items():
        t1 = time.time()
        _, stage = split_pipeline(_path(spec.pipeline, base), dataset, show_progress)
        base_scorer = text_scorer(stage)
        smooth = None
        if spec.smoothed:
            smooth = SmoothedRanker(dataset, base=stage, table=table, samples=spec.samples, seed=cfg.seed,
                                    depth=cfg.depth, keep_tail=False, cache_dir=str(cache),
                                    max_words=cfg.max_words, batch_size=cfg.batch_size, show_progress=False)
            scorer = smooth.smoothed_scores
        else:
            scorer = base_scorer
        rows, scores = [], {}
        for qid in cand:
            ids = list(cand[qid])
            s = np.asarray(scorer(qtext[qid], [texts[d] for d in ids]), dtype=np.float64)
            scores[qid] = dict(zip(ids, s.tolist()))
            order = ranked(scores[qid])
            target = order[cfg.target_rank - 1]
            threshold = scores[qid][order[cfg.k - 1]]
            if smooth is not None and not cfg.adaptive:
                crafted = greedy_attack(qtext[qid], texts[target], float("inf"), table, smooth.raw_scores, cfg.attack)
                new = float(scorer(qtext[qid], [crafted.text])[0])
            else:
                crafted = greedy_attack(qtext[qid], texts[target], threshold, table, scorer, cfg.attack,
                                        importance=smooth.raw_scores if smooth is not None else None)
                new = crafted.score
            others = [v for d, v in scores[qid].items() if d != target]
            new_rank = 1 + sum(v >= new for v in others)
            row = {"qid": qid, "target": target, "success": new > threshold, "rank_gain": cfg.target_rank - new_rank,
                   "substitutions": len(crafted.substitutions)}
            if smooth is not None:
                eps = hoeffding_margin(spec.samples, cfg.alpha)
                bounds = {d: table.bound(texts[d]) for d in ids}
                row["certified"] = certify(scores[qid], bounds, cfg.k, eps).certified
            rows.append(row)
        entry = {"clean_ndcg@10": _ndcg(Run(scores), dataset),
                 "success_rate": float(np.mean([r["success"] for r in rows])),
                 "mean_rank_gain": float(np.mean([r["rank_gain"] for r in rows])),
                 "mean_substitutions": float(np.mean([r["substitutions"] for r in rows])),
                 "minutes": (time.time() - t1) / 60, "rows": rows}
        if smooth is not None:
            cert = [r for r in rows if r["certified"]]
            entry.update(certified=len(cert), certified_successes=sum(r["success"] for r in cert),
                         samples=spec.samples, pairs_scored=smooth.stats["scored"])
        report["rankers"][name] = entry
        log.info("%s: attack success %.3f, mean rank gain %.2f", name, entry["success_rate"], entry["mean_rank_gain"])
    report["minutes"] = (time.time() - t0) / 60
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({**report, "card": run_card(asdict(cfg), cfg.seed, report["minutes"] * 60)}, out_dir / "attack.json")
    lines = [f"# Robustness report: {cfg.dataset}", "",
             f"{len(queries)} queries; the same {cfg.depth} candidates for every ranker; the document each ranker "
             f"puts at rank {cfg.target_rank} is attacked to enter the top {cfg.k} with at most "
             f"{cfg.attack.budget} synonym substitutions.", "",
             "| ranker | clean nDCG@10 | attack success | mean rank gain | mean substitutions | certified (successes) |",
             "|---|---|---|---|---|---|"]
    for name, e in report["rankers"].items():
        cert = f"{e['certified']} ({e['certified_successes']})" if "certified" in e else "-"
        lines.append(f"| {name} | {e['clean_ndcg@10']:.4f} | {e['success_rate']:.3f} | {e['mean_rank_gain']:.2f} | "
                     f"{e['mean_substitutions']:.1f} | {cert} |")
    (out_dir / "attack.md").write_text("\n".join(lines) + "\n")
    _plot_attack(report, out_dir / "attack.png")
    return report


def _plot_attack(report: dict[str, Any], path: Path) -> None:
    """Attack success rate and clean nDCG@10 per ranker, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["rankers"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.2))
    ax.bar(x - 0.2, [report["rankers"][n]["success_rate"] for n in names], 0.4, label="attack success")
    ax.bar(x + 0.2, [report["rankers"][n]["clean_ndcg@10"] for n in names], 0.4, label="clean nDCG@10")
    ax.set_xticks(x, names, rotation=15, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"target at rank {report['target_rank']} into the top {report['k']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
