"""The main job: run the five studies and write one report with a claims table.

    python experiments/reproduce.py --profile small --out results/small [--data_dir DIR]
        [--studies sharpness,tradeoff] [--reclaim] [--export DIR]

Profiles (``jadv.train.config.PROFILES``, named by scale): ``smoke`` (seconds; used by the tests),
``small`` (no download: embedded and generated data; minutes on a 2-core CPU), ``medium`` (MNIST and
CIFAR-10 from the data dir; hours on a 2-core CPU), ``paper`` (paper scale, for a GPU/TPU).

Each study is library code, ``jadv.studies.<study>``: this script loads ``configs/<study>.py``,
calls ``run(config, OUT/<study>)``, and with ``--reclaim`` derives finished studies' verdicts
again from their saved results with ``claims(config, results)``.

Every study writes into ``OUT/<study>/`` and is marked finished by ``OUT/<study>/done.json``. A
rerun skips finished studies and resumes an unfinished one from its cached parts and training
checkpoints, so killing this script loses at most the part that was running. A study being run
is marked by ``OUT/<study>/running.json``: a second process on the same ``OUT`` skips it (so two
processes can split the studies of one report) unless the holder's process is gone. The report is
``OUT/report.md`` and ``OUT/report.html``: one row per claim of the five studies with the
measured value, whether the claim's models met their quality gates (``jadv.studies.gates``), the
verdict (reproduced / not reproduced / inconclusive: models below their gates / not run at this
profile) and the source, then each study's models with their gates, and its figures.
"""
from __future__ import annotations

import argparse
import html
import importlib
import importlib.util
import os
import time

from jadv import _workdir_lock
from jadv._io import atomic_write_text
from jadv.studies.common import VERDICTS, read_json, write_json
from jadv.studies.gates import gate_table
from jadv.train.config import PROFILES, check_profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDIES = ("sketchy_channels", "tradeoff", "scale_properties", "filter_lens", "sharpness")
TITLES = {
    "sketchy_channels": "1. Sketchy channels (Kaur, Cohen, Lipton)",
    "tradeoff": "2. Robustness may be at odds with accuracy (Tsipras et al. 2019)",
    "scale_properties": "3. Adversarial training at scale (Xie & Yuille 2020; AdvProp)",
    "filter_lens": "4. Convolutional filters (Gavrikov & Keuper 2022)",
    "sharpness": "5. Weight-loss-landscape sharpness (Yamada et al. 2021; AWP)",
}


def load_config(name: str, profile: str):
    """``configs/<name>.py:get_config(profile)``, loaded by path (configs are not a package)."""
    path = os.path.join(ROOT, "configs", f"{name}.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config file {path}")
    spec = importlib.util.spec_from_file_location(f"jadv_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(profile)


def study_module(study: str):
    """The library module of a study, ``jadv.studies.<study>``."""
    return importlib.import_module(f"jadv.studies.{study}")


def study_config(study: str, profile: str, data_dir: str | None):
    """``configs/<study>.py:get_config(profile)`` with the data dir filled in."""
    config = load_config(study, profile)
    if data_dir:
        with config.unlocked():
            config.data_dir = data_dir
    return config


def device_description() -> str:
    """Where a study ran, for the report: JAX platform, device kind and count, host CPU count."""
    import jax
    devices = jax.devices()
    return (f"{devices[0].platform} {devices[0].device_kind} x{len(devices)}, "
            f"host with {os.cpu_count()} CPU cores")


LOCK = "running.json"


def claim_study(workdir: str) -> dict | None:
    """Mark ``workdir`` as being run by this process (``workdir/running.json``: pid, host, start).

    Returns None when the claim succeeded (or this process holds it already), else the holder's
    record: a live process on this host that runs the same study into the same folder (two
    processes sharing an output folder split the studies instead of corrupting one). A claim left
    by a killed process, or one that cannot be read, is stale and taken over atomically (one
    winner even when several processes find it stale at once: :mod:`jadv._workdir_lock`); a claim
    from another host is respected.
    """
    return _workdir_lock.claim(workdir, LOCK, reentrant=True)


def release_study(workdir: str) -> None:
    """Remove this process's claim on ``workdir`` (never another process's)."""
    _workdir_lock.release(workdir, LOCK)


def run_study(study: str, profile: str, out: str, data_dir: str | None) -> dict | None:
    """Run one study unless ``out/<study>/done.json`` exists; returns its record, or None when
    another live process is running it into the same folder (see :func:`claim_study`)."""
    workdir = os.path.join(out, study)
    done = os.path.join(workdir, "done.json")
    if os.path.exists(done):
        print(f"[{study}] finished earlier, reusing {done}", flush=True)
        return read_json(done)
    holder = claim_study(workdir)
    if holder is not None:
        print(f"[{study}] skipped: process {holder['pid']} on {holder['host']} is running it in {workdir}; "
              "rerun this command when it has finished to include it in the report", flush=True)
        return None
    try:
        if os.path.exists(done):                  # finished by another process meanwhile
            return read_json(done)
        print(f"[{study}] running profile {profile} in {workdir}", flush=True)
        t0 = time.time()
        record = study_module(study).run(study_config(study, profile, data_dir), workdir)
        record = dict(record, wall_time_s=time.time() - t0, profile=profile, device=device_description())
        write_json(done, record)
        print(f"[{study}] done in {record['wall_time_s']:.0f} s", flush=True)
        return record
    finally:
        release_study(workdir)


def reclaim(study: str, profile: str, out: str, data_dir: str | None) -> bool:
    """Derive a finished study's claims again from its saved results with the current verdict
    rules (``jadv.studies.<study>.claims(config, results)``), rewriting the claims in
    ``done.json``, ``claims.json`` and ``results.json``. Returns whether the study had finished."""
    done = os.path.join(out, study, "done.json")
    if not os.path.exists(done):
        return False
    record = read_json(done)
    record["claims"] = study_module(study).claims(study_config(study, profile, data_dir), record["results"])
    record["claims_rederived_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(done, record)
    write_json(os.path.join(out, study, "claims.json"), record["claims"])
    saved = os.path.join(out, study, "results.json")
    if os.path.exists(saved):
        write_json(saved, dict(read_json(saved), claims=record["claims"]))
    print(f"[{study}] claims derived again from {done}", flush=True)
    return True


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def gate_cell(row: dict) -> str:
    """The claims table's gate column: "met", "no: <models>", "none needed" (analytic), or "-"
    for a record written before gates existed."""
    gates = row.get("gates")
    if gates is None:
        return "-"
    if gates == "missed":
        return "no: " + ", ".join(r["model"] for r in row.get("gate_records", []) if not r["met"])
    return "yes" if gates == "met" else gates


def study_gates(claims: list) -> list:
    """Each gated model of a study once, in order of first use: ``{"model", "gate", "met", "source"}``."""
    seen = {}
    for c in claims:
        for r in c.get("gate_records", []):
            seen.setdefault(r["model"], r)
    return gate_table(seen)


def write_report(out: str, profile: str, records: dict, command: str) -> tuple[str, str]:
    """Write ``out/report.md`` and ``out/report.html``; returns both paths. A study whose record
    is None (being run by another process) is listed as missing."""
    missing = [s for s in STUDIES if s in records and records[s] is None]
    records = {s: r for s, r in records.items() if r is not None}
    rows = [c for study in STUDIES if study in records for c in records[study]["claims"]]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    md = [f"# jadv reproduction report — profile `{profile}`", "",
          f"Command: `{command}`", "",
          f"Claims: {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
          f"{counts['inconclusive']} inconclusive (models below their quality gates), "
          f"{counts['not run at this profile']} not run at this profile.", "",
          "Gates: a claim about trained models is decided only when each of its models met its "
          "quality gate (clean / robust accuracy and, for claims about weights, how far the layer "
          "moved from its initialisation; each study section lists them). \"none needed\": an "
          "analytic claim.", ""]
    if missing:
        md += [f"Not in this report (being run by another process when it was written; rerun the "
               f"command to add): {', '.join(missing)}.", ""]
    md += ["| study | claim | measured | models met gates | verdict | source |", "|---|---|---|---|---|---|"]
    md += [f"| {r['study']} | {_cell(r['claim'])} | {_cell(r['measured'])} | {_cell(gate_cell(r))} | "
           f"**{r['verdict']}** | {_cell(r['source'])} |" for r in rows]
    md.append("")
    for study in STUDIES:
        if study not in records:
            continue
        rec = records[study]
        md += [f"## {TITLES[study]}", "", f"Wall time: {rec.get('wall_time_s', float('nan')):.0f} s "
               f"on {rec.get('device', 'an unrecorded device')}. "
               f"Outputs: `{study}/` (results.json, claims.json). Rerun alone: "
               f"`python experiments/{study}.py --config configs/{study}.py:{profile}`.", ""]
        gates = study_gates(rec["claims"])
        if gates:
            md += ["| model | gate: measured (threshold) | met | gate source |", "|---|---|---|---|"]
            md += [f"| {g['model']} | {_cell(g['gate'])} | {'yes' if g['met'] else '**no**'} | {_cell(g['source'])} |"
                   for g in gates]
            md.append("")
        md += [f"![{fig}]({study}/{fig})" for fig in rec.get("figures", [])]
        md.append("")
    md_path = os.path.join(out, "report.md")
    atomic_write_text(md_path, "\n".join(md))

    esc = html.escape
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>jadv report ({esc(profile)})</title>",
         "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}"
         ".reproduced{background:#e6f4e6}.not.reproduced{background:#fbe3e3}.inconclusive{background:#fff5d6}img{max-width:48%;margin:4px}</style>",
         "</head><body>", f"<h1>jadv reproduction report — profile {esc(profile)}</h1>",
         f"<p>Command: <code>{esc(command)}</code></p>",
         "<table><tr><th>study</th><th>claim</th><th>measured</th><th>models met gates</th><th>verdict</th>"
         "<th>source</th></tr>"]
    for r in rows:
        h.append(f"<tr class='{esc(r['verdict'])}'><td>{esc(r['study'])}</td><td>{esc(r['claim'])}</td>"
                 f"<td>{esc(r['measured'])}</td><td>{esc(gate_cell(r))}</td><td><b>{esc(r['verdict'])}</b></td>"
                 f"<td>{esc(r['source'])}</td></tr>")
    h.append("</table>")
    if missing:
        h.append(f"<p>Not in this report (being run by another process): {esc(', '.join(missing))}.</p>")
    for study in STUDIES:
        if study in records:
            h.append(f"<h2>{esc(TITLES[study])}</h2>")
            gates = study_gates(records[study]["claims"])
            if gates:
                h.append("<table><tr><th>model</th><th>gate: measured (threshold)</th><th>met</th>"
                         "<th>gate source</th></tr>")
                h += [f"<tr><td>{esc(g['model'])}</td><td>{esc(g['gate'])}</td><td>{'yes' if g['met'] else 'no'}"
                      f"</td><td>{esc(g['source'])}</td></tr>" for g in gates]
                h.append("</table>")
            h += [f"<img src='{esc(study)}/{esc(fig)}' alt='{esc(fig)}'>" for fig in records[study].get("figures", [])]
    h.append("</body></html>")
    html_path = os.path.join(out, "report.html")
    atomic_write_text(html_path, "\n".join(h))
    return md_path, html_path


# the records :func:`export_report` copies from each finished study folder, besides its figures
EXPORTED = ("done.json", "results.json", "claims.json")


def export_report(out: str, dest: str) -> list[str]:
    """Copy the report of ``out`` and each finished study's records and figures to ``dest``.

    Copied: ``report.md``, ``report.html``, and for every study with ``done.json`` its
    ``done.json``, ``results.json``, ``claims.json`` and the figures the record lists (so the
    report's image links keep working). Left out: trained models, checkpoints, cached parts and
    ``running.json``. This is how the folders under ``results/`` are made. Returns the copied
    paths, relative to ``dest``.
    """
    import shutil

    if not os.path.exists(os.path.join(out, "report.md")):
        raise FileNotFoundError(f"no report in {out}: run reproduce.py with --out {out} first")
    if os.path.abspath(dest) == os.path.abspath(out):
        raise ValueError("the export destination must differ from the output folder")
    copied = []

    def copy(rel):
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        shutil.copy2(os.path.join(out, rel), os.path.join(dest, rel))
        copied.append(rel)

    for name in ("report.md", "report.html"):
        copy(name)
    for study in STUDIES:
        if not os.path.exists(os.path.join(out, study, "done.json")):
            continue
        figures = read_json(os.path.join(out, study, "done.json")).get("figures", [])
        for name in (*EXPORTED, *figures):
            if os.path.exists(os.path.join(out, study, name)):
                copy(os.path.join(study, name))
    return copied


def run(profile: str, out: str, data_dir: str | None = None, studies=STUDIES, rederive: bool = False) -> str:
    """Run the studies not yet finished under ``out`` and write the report; returns report.md.
    ``rederive``: first derive finished studies' claims again (:func:`reclaim`)."""
    check_profile(profile)
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        raise ValueError(f"unknown studies {unknown}; allowed: {', '.join(STUDIES)}")
    os.makedirs(out, exist_ok=True)
    command = f"python experiments/reproduce.py --profile {profile} --out {out}" + (
        f" --data_dir {data_dir}" if data_dir else "") + (
        f" --studies {','.join(studies)}" if tuple(studies) != STUDIES else "")
    if rederive:
        for s in studies:
            reclaim(s, profile, out, data_dir)
    records = {s: run_study(s, profile, out, data_dir) for s in studies}
    md, _ = write_report(out, profile, records, command)
    print(f"report: {md}", flush=True)
    return md


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="small", help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--out", default=None, help="output directory (default results/<profile>)")
    parser.add_argument("--data_dir", default=None, help="raw data directory (default $JADV_DATA_DIR or ../shared/data)")
    parser.add_argument("--studies", default=",".join(STUDIES), help="comma-separated subset of the studies")
    parser.add_argument("--reclaim", action="store_true",
                        help="derive finished studies' claims again from their saved results (current verdict rules)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="after the run, copy the report, records and figures (no models) to DIR")
    args = parser.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    out = args.out or os.path.join("results", args.profile)
    run(args.profile, out, args.data_dir, tuple(s for s in args.studies.split(",") if s), rederive=args.reclaim)
    if args.export:
        print(f"exported {len(export_report(out, args.export))} files to {args.export}", flush=True)


if __name__ == "__main__":
    main()
