"""The table of `profile_calls.py`'s results (`call_profile.json`), for `report.py`."""


def _number(value, digits=0):
    return f"{value:,.{digits}f}"


def _seconds(value):
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _table(columns, rows):
    return "\n".join([_row(columns), _row(["---"] * len(columns))] + [_row(r) for r in rows])


def _ms(value):
    return "–" if value is None else f"{value * 1000:.3f} ms"


def _maybe_seconds(value):
    return "–" if value is None else _seconds(value) if value >= 0 else f"−{_seconds(-value)}"


def call_profile(workload):
    """`profile_calls.py`: per model the one-off costs, p, x and the break-even step count."""
    settings, configs = workload.get("settings", {}), workload.get("contenders", {})
    calls = settings.get("calls", "?")
    # Each configuration's own runs: its rounds, the 1-minute load before and after it.
    loads = [a[0] for r in configs.values() for a in r.get("load_average", [])] or [
        a[0] for a in (workload.get("load_average_at_start"), workload.get("load_average_at_end"))
        if a]
    counts = sorted({len(r.get("round_totals", [0])) for r in configs.values()}) or [1]
    rounds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    load = f"{min(loads):.2f}–{max(loads):.2f}" if loads else "?"
    rows = []
    for model, figures in workload.get("models", {}).items():
        totals = figures.get("totals", {})
        even = figures.get("break_even_steps")
        rows.append([f"{model.upper()}, {figures['steps_per_epoch']:,} steps/epoch",
                     _maybe_seconds(figures.get("setup_seconds")),
                     _maybe_seconds(figures.get("trace_plain_seconds")),
                     _maybe_seconds(figures.get("trace_xla_seconds")),
                     _maybe_seconds(figures.get("compile_xla_seconds")),
                     _ms(figures["plain_seconds_per_step"]), _ms(figures["xla_seconds_per_step"]),
                     " / ".join(_maybe_seconds(figures.get(k)) for k in (
                         "xla_extra_one_off_seconds", "xla_extra_one_off_parts_seconds")),
                     "never (XLA slower)" if even is None else " / ".join(
                         "–" if v is None else _number(v)
                         for v in (even, figures.get("break_even_steps_parts"))),
                     " / ".join(_maybe_seconds(totals.get(k)) for k in ("plain", "xla", "auto"))])
    summary = _table(["model", "set-up", "trace, plain loop", "trace, XLA loop", "XLA compile",
                      "p (plain, per step)", "x (XLA, per step)",
                      "C, XLA's extra one-off: calls / parts", "break-even C / (p − x), steps",
                      f"{calls} calls: plain / XLA / auto"], rows)
    call_rows = []
    for name, result in configs.items():
        if "unavailable" in result:
            call_rows.append([f"`{name}`", f"unavailable: {result['unavailable']}"] + ["–"] * 3)
            continue
        compiles = ""
        if result.get("compile_per_call"):
            first = result["compile_per_call"][0]
            compiles = " (JAX in call 1: " + ", ".join(
                f"{phase} {first[phase]:.2f} s" for phase in ("trace", "lowering", "compile")
                if phase in first) + ")"
        call_rows.append([f"`{name}`", ", ".join(f"{s:.2f}" for s in result["call_seconds"]),
                          _maybe_seconds(result["first_call_extra_seconds"]) + compiles,
                          _ms(result["seconds_per_step"]), _seconds(result["total_seconds"])])
    per_call = _table(["configuration", "seconds per call", "first call − steady call",
                       "steady, per step", "total (construction incl.)"], call_rows)
    summary += ("\n\nC from whole calls (first call minus a steady call, XLA path minus plain "
                "path) / from the probe's parts (set-up, each loop's trace and first-run extra), "
                "less exposed to the steps' noise; break-even steps from each.")
    short = [f"`{name}` ran {len(r['call_seconds'])}" for name, r in configs.items()
             if len(r.get("call_seconds", [calls])) != calls]
    if short:
        summary += (f"\n\n({', '.join(short)} calls: the {calls}-call totals above count "
                    "the calls not run as steady ones.)")
    return (f"**Where one-epoch calls' time goes: `fit(epochs=e + 1, initial_epoch=e)` "
            f"{calls} times, batch 32** ({rounds} round(s) per configuration, the fastest "
            f"kept whole; 1-minute load "
            f"average {load}; {workload.get('date', '?')[:10]}):\n\n" + summary + "\n\n"
            + per_call)
