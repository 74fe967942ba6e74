"""Turn results.json into ratios, a compact summary, a Markdown table and a PNG chart."""

from .servers import BASELINE, SERVERS

# (scenario, metric, unit, higher_is_better)
HEADLINE = [
    ("connect_storm", "connects_per_s", "connects/s", True),
    ("fanout_{size}x{senders}", "deliveries_per_s", "deliveries/s", True),
    ("fanout_{size}x{senders}", "p50_ms", "ms p50", False),
    ("fanout_{size}x{senders}", "p99_ms", "ms p99", False),
    ("latency_{size}_at_{rate}per_s", "p50_ms", "ms p50", False),
    ("latency_{size}_at_{rate}per_s", "p99_ms", "ms p99", False),
    ("small_rooms_1to1", "deliveries_per_s", "deliveries/s", True),
    ("small_rooms_1to1", "p99_ms", "ms p99", False),
    ("small_rooms_open", "max_rate", "msgs/s at p99 ≤ 100 ms", True),
    ("reconnect_storm_{n}", "catch_up_s", "s until all resumed", False),
    ("idle_{n}", "kib_per_conn", "KiB/conn", False),
    ("idle_{n}", "errors", "errors", False),
]


def metric_value(scenario):
    """The medians of a repeated scenario, or the single result of an idle one."""
    if not isinstance(scenario, dict) or "error" in scenario:
        return None
    return scenario.get("median", scenario)


def rows(results):
    """Every (scenario, metric, unit, higher_is_better) in the results, in a stable order."""
    names = []
    for record in results["servers"].values():
        for name in record.get("scenarios", {}):
            if name not in names:
                names.append(name)

    def order(name):
        prefixes = ("idle_", "connect_storm", "reconnect_storm", "fanout_", "latency_", "small_")
        for i, prefix in enumerate(prefixes):
            if name.startswith(prefix):
                return (i, name)
        return (9, name)

    out = []
    for name in sorted(names, key=order):
        if name == "small_rooms_open":
            metrics = [("max_rate", "msgs/s at p99 ≤ 100 ms", True)]
        elif name.startswith("reconnect_storm"):
            metrics = [
                ("catch_up_s", "s until all resumed", False),
                ("client_catch_up_p99_ms", "ms p99 one client", False),
                ("failed", "not resumed", False),
            ]
        elif name.startswith("connect_storm"):
            metrics = [("connects_per_s", "connects/s", True), ("connect_p99_ms", "ms p99", False)]
        elif name.startswith("idle_"):
            metrics = [("kib_per_conn", "KiB/conn", False), ("errors", "errors", False)]
        elif name.startswith("latency_"):
            metrics = [("p50_ms", "ms p50", False), ("p99_ms", "ms p99", False),
                       ("delivered_ratio", "delivered", True)]  # fmt: skip
        else:
            metrics = [
                ("deliveries_per_s", "deliveries/s", True),
                ("p50_ms", "ms p50", False),
                ("p99_ms", "ms p99", False),
                ("delivered_ratio", "delivered", True),
            ]
        for metric, unit, higher in metrics:
            out.append((name, metric, unit, higher))
    return out


def add_ratios(results):
    """results['ratios'][server]['scenario.metric'] = value / baseline value (same run)."""
    base = results["servers"].get(BASELINE)
    ratios = {}
    for key, record in results["servers"].items():
        ratios[key] = {}
        for name, metric, _, _ in rows(results):
            value = (metric_value(record.get("scenarios", {}).get(name)) or {}).get(metric)
            base_value = None
            if base:
                base_value = (metric_value(base.get("scenarios", {}).get(name)) or {}).get(metric)
            if (
                isinstance(value, int | float)
                and isinstance(base_value, int | float)
                and base_value
            ):
                ratios[key][f"{name}.{metric}"] = round(value / base_value, 3)
    results["ratios"] = ratios
    return ratios


def summary(results):
    """Medians and ratios only: small enough to commit."""
    out = {
        "meta": {
            k: results["meta"].get(k)
            for k in (
                "command",
                "started",
                "smoke",
                "machine",
                "layer",
                "database",
                "postgres_fsync",
                "notes",
                "baseline",
                "seconds",
                "params",
            )
        },  # fmt: skip
        "servers": {},
        "ratios": results.get("ratios", {}),
    }
    for key, record in results["servers"].items():
        values = {}
        for name, metric, _, _ in rows(results):
            scenario = record.get("scenarios", {}).get(name)
            if isinstance(scenario, dict) and "error" in scenario:
                values[name] = {"error": scenario["error"][:300]}
                continue
            value = (metric_value(scenario) or {}).get(metric)
            if value is not None:
                values.setdefault(name, {})[metric] = value
        # The headline figures of issue 16, under the names tools read.
        max_rate = (values.get("small_rooms_open") or {}).get("max_rate")
        if max_rate is not None:
            values["small_rooms_max_rate"] = max_rate
        out["servers"][key] = {"label": record.get("label"), "error": record.get("error"),
                               "values": values}  # fmt: skip
    return out


def fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def repetitions(params):
    """How a scenario was repeated, in words."""
    reps, rounds = params["reps"], params.get("rounds", 1)
    if rounds == 1:
        return f"{reps} repetitions"
    return f"{reps * rounds} repetitions ({reps} in each of {rounds} rounds over all servers)"


def server_keys(results):
    """The run's servers in the bench's order; servers made for the run (daemon@REV) last."""
    known = [k for k in SERVERS if k in results["servers"]]
    return known + [k for k in results["servers"] if k not in known]


def markdown(results):
    keys = server_keys(results)
    labels = [results["servers"][k].get("label", k) for k in keys]
    meta = results["meta"]
    lines = [
        f"# chatserver bench — {meta.get('started')}",
        "",
        f"`{meta.get('command')}` · database: {meta.get('database')} · layer of (b)/(c): "
        f"{meta.get('layer')} · {meta.get('machine', {}).get('cpus')} CPUs "
        f"({meta.get('machine', {}).get('cpu_model', '?')}) · {meta.get('seconds')} s",
        "",
        f"Medians of {repetitions(meta['params'])}; (×r) = ratio to {BASELINE} (b) "
        "in the same run.",
        "",
        "| scenario | metric | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(keys),
    ]
    for name, metric, unit, _ in rows(results):
        cells = []
        for key in keys:
            record = results["servers"][key]
            scenario = record.get("scenarios", {}).get(name)
            if isinstance(scenario, dict) and "error" in scenario:
                cells.append("error")
                continue
            value = (metric_value(scenario) or {}).get(metric)
            ratio = results.get("ratios", {}).get(key, {}).get(f"{name}.{metric}")
            cell = fmt(value)
            if (
                ratio is not None
                and key != BASELINE
                and metric not in ("errors", "delivered_ratio", "failed")
            ):
                cell += f" (×{ratio:.2f})"
            cells.append(cell)
        lines.append(f"| {name} | {unit} | " + " | ".join(cells) + " |")
    errors = [(k, r.get("error")) for k, r in results["servers"].items() if r.get("error")]
    for key, record in results["servers"].items():
        for name, scenario in record.get("scenarios", {}).items():
            if isinstance(scenario, dict) and "error" in scenario:
                errors.append((f"{key}/{name}", scenario["error"]))
            for text in scenario.get("round_errors", ()) if isinstance(scenario, dict) else ():
                errors.append((f"{key}/{name}", text))
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- **{where}**: {str(text)[:300]}" for where, text in errors]
    lines += steps_table(results, keys)
    for note in meta.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def steps_table(results, keys):
    """The open-loop small-room steps of every server: rate, p99, losses, server CPU."""
    lines = []
    for key in keys:
        scenario = results["servers"][key].get("scenarios", {}).get("small_rooms_open")
        if not isinstance(scenario, dict) or not scenario.get("reps"):
            continue
        if not lines:
            lines += ["", "Small rooms, open loop (every step of every round):", "",
                      "| server | round | rate msgs/s | sent/s | p50 ms | p99 ms | lost | "
                      "server CPU | client send lag p99 ms | ≤ 100 ms, none lost |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for rep in scenario["reps"]:
            for step in rep.get("steps", ()):
                lines.append(
                    f"| {key} | {rep.get('round', 1)} | {step['rate']:,} | "
                    f"{fmt(step.get('sent_per_s'))} | {fmt(step.get('p50_ms'))} | "
                    f"{fmt(step.get('p99_ms'))} | {step.get('lost')} | "
                    f"{fmt(step.get('server_cpu'))} | {fmt(step.get('send_lag_p99_ms'))} | "
                    f"{'warm-up' if step.get('warmup') else 'yes' if step.get('ok') else 'no'} |"
                )
    return lines


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = server_keys(results)
    throughput = [(n, m) for n, m, _, higher in rows(results)
                  if m in ("deliveries_per_s", "connects_per_s", "max_rate")]  # fmt: skip
    latency = [(n, m) for n, m, _, _ in rows(results) if m == "p99_ms"]
    memory = [(n, m) for n, m, _, _ in rows(results) if m == "kib_per_conn"]
    panels = [(throughput, "per second (log)", True), (latency, "p99 latency, ms (log)", True),
              (memory, "idle KiB per connection", False)]  # fmt: skip

    def measured(metrics):
        """Metrics that at least one server has a value for (whole-scenario errors drop out)."""
        keep = []
        for name, metric in metrics:
            for record in results["servers"].values():
                value = (metric_value(record.get("scenarios", {}).get(name)) or {}).get(metric)
                if isinstance(value, int | float) and value > 0:
                    keep.append((name, metric))
                    break
        return keep

    panels = [(measured(m), label, log) for m, label, log in panels]
    panels = [p for p in panels if p[0]]
    if not panels:  # nothing measured above zero: a figure that says so
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no positive figure to chart in this run", ha="center", va="center")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False)
    width = 0.8 / max(1, len(keys))
    for ax, (metrics, ylabel, log) in zip(axes[:, 0], panels, strict=True):
        for i, key in enumerate(keys):
            record = results["servers"][key]
            values = []
            for name, metric in metrics:
                value = (metric_value(record.get("scenarios", {}).get(name)) or {}).get(metric)
                values.append(value if isinstance(value, int | float) and value > 0 else 0)
            xs = [x + (i - (len(keys) - 1) / 2) * width for x in range(len(metrics))]
            ax.bar(xs, values, width, label=record.get("label", key))
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels([n.replace("_", " ") for n, _ in metrics], fontsize=8, rotation=15)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2)
    meta = results["meta"]
    fig.suptitle(f"chatserver bench {meta.get('started')} — {meta.get('database')}, "
                 f"{meta.get('machine', {}).get('cpus')} CPUs", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    """Rewrite summary.json, results.md and chart.png from a results.json."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", help="results.json of a run")
    parser.add_argument("out", help="directory for summary.json, results.md, chart.png")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    add_ratios(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary(results), indent=1))
    (out / "results.md").write_text(markdown(results))
    chart(results, out / "chart.png")


if __name__ == "__main__":
    main()
