"""Markdown tables of the benchmark results (``results.md``)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import fmt_bytes, fmt_seconds, median


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _ratio(r: dict | None) -> str:
    if not r:
        return "n/a"
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def _yes(v: Any) -> str:
    return "n/a" if v is None else ("met" if v else "MISSED")


def _w1(r: dict[str, Any]) -> list[str]:
    s = r["settings"]
    lines = ["## W1: theory-sized sweep", "",
             f"{s['runs']} runs ({len(s['temperatures'])} temperatures x "
             f"{s['runs'] // len(s['temperatures'])} seeds), {s['steps']} steps, B = "
             f"{s['batch_size']}, dx = dy = {s['image_dim']}, d = {s['embed_dim']}, one-hot K = "
             f"{s['num_concepts']}, evaluation on {s['eval_num_samples']} samples; "
             f"{s['chunks']} chunk(s) of {s['chunk_size']}. The naive loops ran runs "
             f"{s['naive_subset']} ({len(s['naive_subset'])} of {s['runs']}, every step) and are "
             f"compared in model-steps per second. {s['repeats']} interleaved rounds; medians, "
             "ratios per round (median, min-max).", ""]
    names = {"sweep": "`clipsim sweep` (local backend, train + evaluate + table)",
             "sweep_program": "sweep program only (the first chunk, `run_batch`)",
             "naive_jax": "naive JAX (jitted step, Python loop)",
             "torch": "PyTorch eager loop (`torch.optim.Adam`, default threads)",
             "torch_1thread": "PyTorch eager loop, 1 thread"}
    rows = []
    rate_naive = r["model_steps_per_s"]["naive_jax"]["median"]
    rate_torch = max((r["model_steps_per_s"].get(k, {}).get("median") or 0)
                     for k in ("torch", "torch_1thread")) or None
    for k, v in r["model_steps_per_s"].items():
        rows.append([names.get(k, k), r["model_steps"][k], fmt_seconds(r["times_s"][k]["median"]),
                     f"{v['median']:.0f}", f"{v['median'] / rate_naive:.2f}",
                     f"{v['median'] / rate_torch:.2f}" if rate_torch else "n/a"])
    lines += _table(["variant", "model-steps timed", "time (median)", "model-steps/s",
                     "/ naive JAX", "/ faster torch"], rows)
    lines += ["Paired ratios (per round; torch: the faster of its two settings in that "
              "round): " + ", ".join(
        f"{k} {_ratio(v)}" for k, v in r["ratios"].items()) + ".", ""]
    if not r["torch"].get("available"):
        lines += [f"PyTorch: {r['torch'].get('message', 'skipped')}", ""]
    c = r["compile"]
    lines += [f"Compile: the first chunk's program run minus a warm run "
              f"{fmt_seconds(c['sweep']['first_chunk_minus_warm_s'])}; the first `run` minus a "
              f"warm one {fmt_seconds(c['sweep']['cold_minus_warm_s'])}; naive step "
              f"(ahead of time) {fmt_seconds(c['naive_jax']['trace_lower_s'])} + "
              f"{fmt_seconds(c['naive_jax']['compile_s'])}. Sweep programs traced over all rounds: "
              f"{r['sweep_traces_after_all_rounds']} (one static group).", "",
              f"Hot path: host callbacks inside the program: "
              f"{r['hot_path']['host_callbacks_in_program'] or 'none'}; {r['hot_path']['scans']} "
              "nested scans (logging blocks x steps) run inside one executable per chunk. "
              f"Final loss, naive loop vs sweep, same runs: max |diff| "
              f"{r['naive_vs_sweep_final_loss_max_abs_diff']:.1e}.", ""]
    cli = r.get("cli", {})
    if cli:
        lines += [f"### CLI in fresh processes ({cli['runs']} runs x {cli['steps']} steps)", ""]
        rows = []
        for tag in ("first", "second", "memory_budget", "max_batch"):
            x = cli.get(tag, {})
            if "error" in x or not x:
                rows.append([tag, x.get("error", "missing"), "", "", "", "", "", ""])
                continue
            budget = x.get("budget")
            rows.append([
                tag.replace("_", " ") + (f" ({fmt_bytes(budget)})" if budget else ""),
                f"{x['wall_s']:.1f} s",
                x["backend_compiles"].get("jit(sweep_chunk)", 0),
                f"{x['cache_hits']} / {x['cache_misses']}",
                fmt_bytes(x["rss_peak"]), fmt_bytes(x["rss_increment"]),
                fmt_bytes(x.get("rss_exec_increment") or 0),
                _yes(x.get("within_budget")) if budget else ""])
        lines += _table(["run", "wall", "sweep programs compiled/loaded", "cache hits / misses",
                         "peak RSS", "+ over imports", "+ while running", "within budget"], rows)
        lines += [f"Estimated bytes per run (`estimate_run_bytes`): "
                  f"{fmt_bytes(cli['estimate_run_bytes'])}. Second run reuses the persistent "
                  f"cache: {_yes(cli.get('second_reuses_cache'))} (sweep program "
                  f"{fmt_seconds(cli.get('first_compile_s') or float('nan'))} to compile, "
                  f"{fmt_seconds(cli.get('second_compile_s') or float('nan'))} to load).", ""]
    return lines


def _w2(r: dict[str, Any]) -> list[str]:
    s, g, f = r["settings"], r["gflops"], r["flops_per_step"]
    lines = ["## W2: large batch", "",
             f"`mlp2` encoders {s['image_dim']} -> {s['hidden_dim']} -> {s['embed_dim']}, "
             f"B = {s['batch_size']}, one run, {s['steps_per_call']} steps per call; "
             f"{f['total'] / 1e9:.2f} GFLOP of matmuls per step (encoders "
             f"{(f['encoders_fwd'] + f['encoders_bwd']) / 1e9:.2f}, scores "
             f"{(f['scores_fwd'] + f['scores_bwd']) / 1e9:.2f}). Peak: float32 "
             f"{s['peak_matmul_n']} x {s['peak_matmul_n']} matmul, same rounds.", ""]
    lines += _table(["", "time (median)", "GFLOP/s (median)", "min-max"], [
        ["training step", fmt_seconds(r["times_s"]["train_step"]["median"]),
         f"{g['train_step']['median']:.1f}",
         f"{g['train_step']['min']:.1f}-{g['train_step']['max']:.1f}"],
        ["jax matmul", fmt_seconds(r["times_s"]["jax_matmul"]["median"]),
         f"{g['jax_matmul']['median']:.1f}",
         f"{g['jax_matmul']['min']:.1f}-{g['jax_matmul']['max']:.1f}"],
        ["numpy matmul", fmt_seconds(r["times_s"]["numpy_matmul"]["median"]),
         f"{g['numpy_matmul']['median']:.1f}",
         f"{g['numpy_matmul']['min']:.1f}-{g['numpy_matmul']['max']:.1f}"]])
    lines += [f"Fraction of peak (per round, against the faster of the two): "
              f"{_ratio(r['fraction_of_peak'])}. Compile "
              f"{fmt_seconds(r['compile']['compile_s'])}; XLA temporaries "
              f"{fmt_bytes(r['xla_temp_bytes'] or 0)}.", ""]
    rows = [[k, fmt_seconds(v["median"]),
             f"{r['breakdown_gflops'][k]:.1f}" if k in r["breakdown_gflops"] else ""]
            for k, v in r["breakdown_s"].items()]
    if "dense_step_over_blocked_step" in r:
        lines += [f"Dense-loss step over blocked-loss step (same B, per round): "
                  f"{_ratio(r['dense_step_over_blocked_step'])}; fraction of peak with the "
                  f"dense loss {_ratio(r['fraction_of_peak_dense_loss'])}.", ""]
    big = r.get("large_b", {}).get("blocked", {})
    if "rss_increment" in big:
        plan = r["large_b"].get("dense_compile_only", {}).get("xla_temp_bytes") or 0
        lines += [f"B = {big['b']:,} (linear, d = 64), blocked loss: peak RSS "
                  f"+{fmt_bytes(big['rss_increment'])} while training, XLA temporaries "
                  f"{fmt_bytes(big['xla_temp_bytes'] or 0)}; the dense loss would plan "
                  f"{fmt_bytes(plan)}.", ""]
    lines += ["Parts of a step, each as its own program (includes first-touch of its "
              "output buffers):", ""]
    lines += _table(["part", "time (median)", "matmul GFLOP/s"], rows)
    return lines


def _w3(r: dict[str, Any]) -> list[str]:
    lines = ["## W3: evaluation", ""]
    rows = []

    def add(name: str, x: dict[str, Any]) -> None:
        if "error" in x:
            rows.append([name, x.get("n", ""), "error", "", "", ""])
            return
        rows.append([name, f"{x['n']:,}",
                     fmt_seconds(median(x["run_s"])) if x.get("run_s") else "(not run)",
                     fmt_seconds(x["compile_s"]) if x.get("compile_s") is not None else "",
                     fmt_bytes(x["rss_increment"]) if "rss_increment" in x else "",
                     fmt_bytes(x["xla_temp_bytes"]) if x.get("xla_temp_bytes") else ""])

    for name in ("zero_shot", "recovery", "theory", "margins_blocked", "evaluate"):
        if name in r["cases"]:
            add(name, r["cases"][name])
    for size, x in r["cases"]["margins_dense"].items():
        add(f"margins_dense ({size})" if "compile" in size else "margins_dense", x)
    lines += _table(["case", "n", "time (median)", "compile", "peak RSS (+)", "XLA temp"], rows)
    if "blocked_vs_dense_max_abs_diff" in r:
        lines += [f"Blocked vs library margins, same inputs: max |diff| "
                  f"{r['blocked_vs_dense_max_abs_diff']:.1e}.", ""]
    ev = r["cases"].get("evaluate_vmap", {})
    if "vmap_s" in ev:
        lines += [f"`evaluate_program` (n = 2000) on {ev['runs']} runs: vmap "
                  f"{fmt_seconds(median(ev['vmap_s']))}, Python loop "
                  f"{fmt_seconds(median(ev['loop_s']))} ({ev['loop_over_vmap']:.2f}x).", ""]
    return lines


def _w3_targets(r: dict[str, Any]) -> dict[str, bool]:
    """evaluate plus the bounds table at the largest n: under 60 s and 1 GiB added."""
    ev = r.get("evaluate_targets")
    theory = r["cases"].get("theory", {})
    if not ev or not theory.get("run_s"):
        return {}
    seconds = ev["seconds"] + median(theory["run_s"])
    added = max(ev["rss_increment_bytes"], theory.get("rss_increment", 0))
    n = f"{ev['n']:,}"
    return {f"evaluate + bounds table at n = {n} under 60 s ({seconds:.0f} s)": seconds < 60,
            f"evaluate + bounds table at n = {n} under 1 GiB added ({fmt_bytes(added)})":
                added < 2**30}


def _scaling(r: dict[str, Any]) -> list[str]:
    b = r["batch"]
    fit = b["fit"]
    lines = ["## Scaling", "", "![time per step against B](scaling_batch.png)", "",
             "![time per model-step against G](scaling_runs.png)", ""]
    rows = [[x, b["steps_per_call"][str(x)], fmt_seconds(b["time_per_step_s"][str(x)]["median"]),
             f"{100 * b['quadratic_share'][str(x)]:.0f}%"] for x in b["B"]]
    lines += _table(["B", "steps per call", "time per step", "B^2 share (fit)"], rows)
    lines += [f"Fit t = a + bB + cB^2: a = {fit['a'] * 1e6:.0f} us, b = {fit['b'] * 1e9:.1f} ns, "
              f"c = {fit['c'] * 1e12:.2f} ps; the B^2 term dominates above B = "
              f"{fit['crossover_B']:.0f}.", ""]
    for bs, x in r["runs"].items():
        rows = [[g, fmt_seconds(x["time_per_model_step_s"][str(g)]["median"]),
                 f"{x['speedup_vs_G1'][str(g)]:.2f}", f"{x['speedup_vs_naive'][str(g)]:.2f}"]
                for g in x["G"]]
        lines += [f"B = {bs}: naive loop {fmt_seconds(x['naive_time_per_step_s']['median'])} "
                  f"per step; within 10% of the best time per model-step from G = "
                  f"{x['G_within_10pct_of_best']}.", ""]
        lines += _table(["G", "time per model-step", "vs G = 1", "vs naive loop"], rows)
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: machine, one section per workload, the targets."""
    m = results["machine"]
    lines = [f"# clipsim benchmarks ({results['mode']} mode)", "",
             f"- machine: {m['cpu_model']}, {m['cpu_count']} cores ({m['usable_cores']} usable), "
             f"{(m.get('memory_bytes') or 0) / 2**30:.1f} GiB, {m['platform']}",
             f"- software: python {m['python']}, jax {m['jax']}, jaxlib {m['jaxlib']}, numpy "
             f"{m['numpy']}, optax {m['optax']}, torch {m['torch'] or 'not installed'}",
             f"- XLA_FLAGS: `{m['xla_flags'] or '(none)'}`",
             f"- load average at start {m['load_average_start']}, at end "
             f"{m.get('load_average_end', '?')} (a shared machine: compare ratios, not times)",
             f"- {m['time']}", ""]
    w = results["workloads"]
    targets: dict[str, Any] = {}
    if "w1" in w:
        lines += _w1(w["w1"])
        targets.update(w["w1"].get("targets", {}))
    if "w2" in w:
        lines += _w2(w["w2"])
        targets.update(w["w2"].get("targets", {}))
    if "w3" in w:
        lines += _w3(w["w3"])
        targets.update(_w3_targets(w["w3"]))
    if "scaling" in w:
        lines += _scaling(w["scaling"])
    if "memory" in w:
        from benchmarks.memory_estimate import table

        lines += ["## Memory estimate against the measured peak", "",
                  table(w["memory"]["rows"]), ""]
        targets.update(w["memory"].get("targets", {}))
    if targets:
        lines += ["## Targets", ""]
        lines += _table(["target", "result"], [[k, _yes(v)] for k, v in targets.items()])
    return "\n".join(lines)
