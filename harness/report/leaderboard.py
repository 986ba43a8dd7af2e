"""A lab-wide leaderboard over every run in a store: one row per generator spec and knob values.

Two numbers are compared only when they were measured the same way, so rows are grouped by **protocol**
(score, dataset, test split, image shape, training recipe and its settings, feature extractors and their
weights, sample counts) and ranked only within their protocol's table; each table names the fields in
which it differs from the other tables of the same score (CAS or NAS). A row pools the seeds of every
complete run that measured that spec at those knob values under that protocol (a seed measured by several
runs counts once, from the newest run), and names the runs and their dates. Incomplete runs are listed
as such and contribute no numbers.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

PROTOCOL_FIELDS = ("score", "dataset", "test_split", "image_shape", "recipe", "recipe_settings",
                   "feature_extractors", "extractor_weights", "n_train", "n_val", "metrics_num_samples")
SCORES = {"real": "CAS", "cas": "CAS", "nas": "NAS"}
METRICS = ("top1", "top5", "is_mean")


def spec_key(kind: str, params: Mapping[str, Any] | None) -> str:
    """A generator spec's identity, independent of the name a config gave it: its kind and a hash of its
    parameters in canonical JSON."""
    canonical = json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)
    return f"{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _canonical(value: Any) -> Any:
    """A hashable, order-independent form of a protocol field's value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    return value


def _protocol(record: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol fields of a record; a field the record lacks is taken from the run's info. NAS rows
    train on r·|real| extra samples, so their training-set size is not a protocol field (r is in the row)."""
    score = SCORES.get(record.get("mode"), record.get("mode"))
    fields = {}
    for name in PROTOCOL_FIELDS[1:]:
        fields[name] = record.get(name, run.get(name))
    if score == "NAS":
        fields["n_train"] = None
    if isinstance(fields["image_shape"], list | tuple):
        fields["image_shape"] = "×".join(map(str, fields["image_shape"]))
    return {"score": score, **fields}


def _fmt_field(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt_field(v)}" for k, v in sorted(value.items())) or "{}"
    if isinstance(value, list | tuple):
        return ", ".join(map(_fmt_field, value))
    return str(value)


def _metric_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics the rows carry: Top-1 and Top-5 (always, so a table of failed cells says so there), IS,
    then every ``fd_``/``fid``, ``kid_*_mean``, ``precision_``/``recall_`` key present."""
    present = {k for r in records for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    extra = sorted(k for k in present if k == "fid" or k.startswith(("fd_", "precision", "recall"))
                   or (k.startswith("kid") and k.endswith("mean")))
    return [k for k in METRICS if k in present or k in ("top1", "top5")] + extra


LOWER_IS_BETTER = ("fid", "fd_", "kid")


def _better(metric: str) -> Any:
    return min if metric.startswith(LOWER_IS_BETTER) else max


def _mean_per_class(records: Sequence[Mapping[str, Any]]) -> list[float | None] | None:
    lists = [r["per_class_accuracy"] for r in records if r.get("per_class_accuracy")]
    if not lists or len({len(x) for x in lists}) > 1:
        return None
    return [None if any(v is None for v in col) else statistics.fmean(col) for col in zip(*lists, strict=True)]


def _row(records: list[tuple[Mapping[str, Any], Mapping[str, Any]]], metrics: list[str]) -> dict[str, Any]:
    """A leaderboard row from (record, run) pairs of one spec, knob values and protocol."""
    newest: dict[Any, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
    for record, run in sorted(records, key=lambda p: str(p[1].get("date", ""))):
        newest[record.get("seed")] = (record, run)
    ok = [r for r, _ in newest.values() if r.get("status", "ok") == "ok"]
    first = records[0][0]
    row: dict[str, Any] = {
        "generators": sorted({r["generator"] for r, _ in records}), "kind": first.get("kind"),
        "mode": first.get("mode"), "knobs": dict(first.get("knobs") or {}),
        "augmentation_ratio": first.get("augmentation_ratio") if first.get("mode") == "nas" else None,
        "seeds": len(ok), "failed": len(newest) - len(ok),
        "errors": sorted({str(r.get("error")) for r, _ in newest.values() if r.get("status", "ok") != "ok"}),
        "runs": sorted({(str(run["run"]), str(run.get("date", ""))) for _, run in newest.values()},
                       key=lambda x: x[1])}
    for metric in metrics:
        values = [r[metric] for r in ok if r.get(metric) is not None]
        if values:
            row[metric] = statistics.fmean(values)
            row[metric + "_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
    per_class = _mean_per_class(ok)
    row["classes_at_zero"] = None if per_class is None else sum(1 for a in per_class if a == 0)
    return row


def _record_spec(record: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """The record's spec key; where neither the record nor its run gives the parameters, the generator's
    name stands in for them, so two unknown specs are never merged."""
    params = record.get("params")
    if params is None:
        params = (run.get("generators") or {}).get(record["generator"], {}).get("params")
    if params is None:
        return f"{record.get('kind')}:{record['generator']}"
    return spec_key(str(record.get("kind")), params)


def leaderboard(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge runs into protocol tables of ranked rows, and list the incomplete runs.

    ``runs``: dicts with ``run`` (folder), ``date`` (ISO 8601), ``status`` (``"complete"`` or
    ``"incomplete"``), ``records`` (the run's records) and optionally run-wide protocol fields
    (``image_shape``, ``extractor_weights``, ...) and ``generators`` (name → {"kind", "params"}) for records
    that do not carry ``params``. Returns {"tables": [{"protocol", "differs_in", "metrics", "rows"}],
    "incomplete": [{"run", "date", "records"}]}; rows are sorted by Top-1, generator rows carry ``rank``
    (1 = best, equal Top-1 share a rank), the Real row and rows without a Top-1 carry ``rank`` None.
    """
    for run in runs:
        if run.get("status") not in ("complete", "incomplete"):
            raise ValueError(f"run {run.get('run')!r}: status {run.get('status')!r}; expected 'complete' or "
                             f"'incomplete'")
    incomplete = [{"run": str(r["run"]), "date": str(r.get("date", "")), "records": len(r.get("records") or [])}
                  for r in runs if r["status"] == "incomplete"]
    groups: dict[tuple, dict[tuple, list]] = {}
    protocols: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        if run["status"] != "complete":
            continue
        for record in run.get("records") or []:
            protocol = _protocol(record, run)
            pkey = tuple(_canonical(protocol[f]) for f in PROTOCOL_FIELDS)
            protocols.setdefault(pkey, protocol)
            ratio = record.get("augmentation_ratio") if record.get("mode") == "nas" else None
            rkey = (_record_spec(record, run), _canonical(record.get("knobs") or {}), record.get("mode"), ratio)
            groups.setdefault(pkey, {}).setdefault(rkey, []).append((record, run))
    tables = []
    for pkey, cells in groups.items():
        metrics = _metric_keys([r for pairs in cells.values() for r, _ in pairs])
        rows = [_row(pairs, metrics) for pairs in cells.values()]
        rows.sort(key=lambda r: (r["mode"] != "real", -(r.get("top1") if r.get("top1") is not None else -1.0)))
        rank, previous = 0, None
        for i, row in enumerate(r for r in rows if r["mode"] != "real" and r.get("top1") is not None):
            if row["top1"] != previous:
                rank, previous = i + 1, row["top1"]
            row["rank"] = rank
        for row in rows:
            row.setdefault("rank", None)
        best = {m: _better(m)(vals) for m in metrics
                if (vals := [r[m] for r in rows if r["mode"] != "real" and r.get(m) is not None])}
        same_score = [pk for pk in protocols if pk[0] == pkey[0]]
        varying = [f for i, f in enumerate(PROTOCOL_FIELDS) if len({pk[i] for pk in same_score}) > 1]
        tables.append({"protocol": protocols[pkey], "differs_in": {f: protocols[pkey][f] for f in varying},
                       "metrics": metrics, "best": best, "rows": rows})
    tables.sort(key=lambda t: tuple(_fmt_field(t["protocol"][f]) for f in PROTOCOL_FIELDS))
    return {"tables": tables, "incomplete": incomplete}


METRIC_NAMES = {"top1": "Top-1 (%)", "top5": "Top-5 (%)", "is_mean": "IS", "fid": "FID"}


def _metric_name(key: str) -> str:
    if key in METRIC_NAMES:
        return METRIC_NAMES[key]
    for prefix, name in (("fd_", "FD"), ("precision_", "precision"), ("recall_", "recall")):
        if key.startswith(prefix):
            return f"{name} ({key[len(prefix):]})"
    if key.startswith("kid_") and key.endswith("_mean"):
        return f"KID×10³ ({key[4:-5]})"
    return key


def _metric_value(row: Mapping[str, Any], key: str) -> str:
    if row.get(key) is None:
        return "–"
    scale = 100 if key in ("top1", "top5") else 1000 if key.startswith("kid") else 1
    digits = 3 if key.startswith(("precision", "recall")) else 2
    spread = f" ± {scale * row[key + '_std']:.{digits}f}" if row["seeds"] > 1 else ""
    return f"{scale * row[key]:.{digits}f}{spread}"


def _what(row: Mapping[str, Any]) -> str:
    if row["mode"] == "real":
        return "Real (reference)"
    return ", ".join(row["generators"])


def _knobs(row: Mapping[str, Any]) -> str:
    knobs = dict(row["knobs"])
    if row["augmentation_ratio"] is not None:
        knobs["augmentation_ratio"] = row["augmentation_ratio"]
    return _fmt_field(knobs) if knobs else "–"


def _runs(row: Mapping[str, Any]) -> str:
    return "; ".join(f"{run} ({date[:10]})" if date else run for run, date in row["runs"])


def _title(table: Mapping[str, Any], index: int) -> str:
    protocol = table["protocol"]
    return f"Protocol {index + 1}: {protocol['score']} on {protocol['dataset']} ({protocol['test_split']} split)"


def _differences(table: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} = {_fmt_field(v)}" for k, v in table["differs_in"].items())


def _columns(table: Mapping[str, Any]) -> list[str]:
    return (["rank", "generator", "kind", "knobs"] + [_metric_name(m) for m in table["metrics"]]
            + ["classes at 0%", "seeds", "runs"])


def _cells(table: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    rank = "–" if row["rank"] is None else str(row["rank"])
    values = [_metric_value(row, m) for m in table["metrics"]]
    if row.get("top1") is None and row["failed"]:
        values[0] = "failed: " + "; ".join(row["errors"])
    zero = "–" if row["classes_at_zero"] is None else str(row["classes_at_zero"])
    return [rank, _what(row), str(row["kind"]), _knobs(row), *values, zero, str(row["seeds"]), _runs(row)]


def _is_best(table: Mapping[str, Any], row: Mapping[str, Any], metric: str) -> bool:
    return row["mode"] != "real" and row.get(metric) is not None and row[metric] == table["best"].get(metric)


def leaderboard_markdown(board: Mapping[str, Any]) -> str:
    """Markdown: one table per protocol (best value per column in bold), then the incomplete runs."""
    out = ["# CAS leaderboard", ""]
    for i, table in enumerate(board["tables"]):
        out += [f"## {_title(table, i)}", "", "Protocol: " + "; ".join(
            f"{k} = {_fmt_field(v)}" for k, v in table["protocol"].items()) + "."]
        if table["differs_in"]:
            out += ["", f"Differs from the other {table['protocol']['score']} tables in: {_differences(table)}."]
        columns = _columns(table)
        out += ["", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
        for row in table["rows"]:
            cells = _cells(table, row)
            for j, metric in enumerate(table["metrics"]):
                if _is_best(table, row, metric):
                    cells[4 + j] = f"**{cells[4 + j]}**"
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    if board["incomplete"]:
        out += ["## Incomplete runs (not ranked)", "", "| run | date | records so far |", "|---|---|---|"]
        out += [f"| {r['run']} | {r['date']} | {r['records']} |" for r in board["incomplete"]]
    return "\n".join(out).rstrip("\n") + "\n"


def leaderboard_html(board: Mapping[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, no scripts or external resources)."""
    esc = html.escape
    parts = []
    for i, table in enumerate(board["tables"]):
        protocol = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt_field(v))}</td></tr>"
                           for k, v in table["protocol"].items())
        differs = (f'<p class="differs">Differs from the other {esc(table["protocol"]["score"])} tables in: '
                   f"{esc(_differences(table))}.</p>"
                   if table["differs_in"] else "")
        head = "".join(f"<th>{esc(c)}</th>" for c in _columns(table))
        body = []
        for row in table["rows"]:
            cells = _cells(table, row)
            tds = [f"<td>{esc(c)}</td>" for c in cells]
            for j, metric in enumerate(table["metrics"]):
                if _is_best(table, row, metric):
                    tds[4 + j] = f'<td class="best">{esc(cells[4 + j])}</td>'
            css = ' class="reference"' if row["mode"] == "real" else ""
            body.append(f"<tr{css}>{''.join(tds)}</tr>")
        parts.append(f'<section class="protocol"><h2>{esc(_title(table, i))}</h2>'
                     f'<table class="protocol-fields">{protocol}</table>{differs}'
                     f'<table class="ranking"><tr>{head}</tr>{"".join(body)}</table></section>')
    if board["incomplete"]:
        rows = "".join(f"<tr><td>{esc(r['run'])}</td><td>{esc(r['date'])}</td><td>{r['records']}</td></tr>"
                       for r in board["incomplete"])
        parts.append('<section class="incomplete"><h2>Incomplete runs (not ranked)</h2>'
                     f"<table><tr><th>run</th><th>date</th><th>records so far</th></tr>{rows}</table></section>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>CAS leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}}
.best{{font-weight:bold;background:#e8f1fa}}.reference{{color:#555;font-style:italic}}
.differs{{color:#b35900}}</style></head>
<body><h1>CAS leaderboard</h1>
<p>Rows are ranked by Top-1 only against rows measured under the same protocol; best value per column in bold.</p>
{''.join(parts)}
</body></html>
"""


def leaderboard_csv(board: Mapping[str, Any]) -> str:
    """One flat table: the protocol's fields on every row, then the row's identity and raw values
    (accuracies as fractions), so the file can be filtered by protocol without the HTML."""
    metrics = sorted({m for t in board["tables"] for m in t["metrics"]})
    header = (["protocol", *PROTOCOL_FIELDS, "rank", "generator", "kind", "mode", "knobs", "augmentation_ratio"]
              + [c for m in metrics for c in (m, m + "_std")] + ["classes_at_zero", "seeds", "failed", "runs"])
    out = io.StringIO()
    writer = csv.DictWriter(out, header, restval="")
    writer.writeheader()
    for i, table in enumerate(board["tables"]):
        fields = {f: _fmt_field(v) for f, v in table["protocol"].items() if v is not None}
        for row in table["rows"]:
            values = {c: row[c] for m in metrics for c in (m, m + "_std") if row.get(c) is not None}
            writer.writerow({"protocol": i + 1, **fields, **values, "rank": row["rank"],
                             "generator": " ".join(row["generators"]), "kind": row["kind"], "mode": row["mode"],
                             "knobs": json.dumps(row["knobs"], sort_keys=True),
                             "augmentation_ratio": row["augmentation_ratio"], "classes_at_zero": row["classes_at_zero"],
                             "seeds": row["seeds"], "failed": row["failed"], "runs": _runs(row)})
    for r in board["incomplete"]:
        writer.writerow({"protocol": "incomplete", "runs": f"{r['run']} ({r['date']})"})
    return out.getvalue()
