//! The long form of issue #13's chaos suite (run by `tests/bench/chaos.sh`): N random
//! operations against a real apiserver and real `ferrolb-controller` replicas under faults.
//! Prints the summary to stderr and a Markdown section for `docs/benchmarks.md` to stdout;
//! exits 1 when the checker found violations or steps did not settle.
//!
//! Usage: bench-chaos [--seed N] [--ops N] [--replicas 2|3] [--scenarios LIST]
//!                    [--max-ops-per-step N] [--fault-percent P]

use std::process::ExitCode;

use anyhow::Context as _;
use ferrolb_tests::chaos::{Report, Scenarios, Settings, run};

fn parse_args() -> anyhow::Result<Settings> {
    let mut settings = Settings::short(13, 10_000);
    settings.progress_every = 50;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => settings.seed = value()?.parse()?,
            "--ops" => settings.ops = value()?.parse()?,
            "--replicas" => settings.replicas = value()?.parse()?,
            "--scenarios" => settings.scenarios = Scenarios::parse(&value()?)?,
            "--max-ops-per-step" => settings.max_ops_per_step = value()?.parse()?,
            "--fault-percent" => settings.fault_percent = value()?.parse()?,
            "--verbose" => settings.verbose = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        (1..=3).contains(&settings.replicas),
        "--replicas is 1, 2 or 3"
    );
    Ok(settings)
}

fn markdown(r: &Report, command: &str) -> String {
    let faults: usize = r.faults.values().sum();
    let mut s = format!(
        "`{command}` — seed {}, scenarios {}, {} controller replicas (real processes), \
         {:.0} min.\n\n| | |\n|---|---|\n| operations | {} ({} refused by the apiserver) |\n\
         | steps (each settled and checked) | {} |\n| faults | {faults} |\n",
        r.seed,
        r.scenarios,
        r.replicas,
        r.elapsed.as_secs_f64() / 60.0,
        r.ops,
        r.op_errors.len(),
        r.steps,
    );
    for (f, n) in &r.faults {
        s.push_str(&format!("| — {f} | {n} |\n"));
    }
    s.push_str(&format!(
        "| 410 Gone confirmed after a compaction | {} |\n| checks | {} |\n\
         | Services that gained IPs / moves the step required | {} / {} |\n\
         | steps that did not settle | {} |\n| replicas that exited on their own | {} |\n\
         | **violations** | **{}** |\n",
        r.gone_confirmed,
        r.checks,
        r.gained,
        r.moved_with_cause,
        r.unsettled.len(),
        r.replica_exits.len(),
        r.violations.len(),
    ));
    for f in &r.violations {
        s.push_str(&format!(
            "\n- step {}: {} ({})",
            f.step,
            f.violation,
            f.standing()
        ));
    }
    s.push('\n');
    s
}

async fn main_inner() -> anyhow::Result<bool> {
    let settings = parse_args()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = run(settings).await?;
    eprintln!("{}", report.summary());
    println!("{}", markdown(&report, &command));
    Ok(report.violations.is_empty() && report.unsettled.is_empty())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_inner()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}
