//! `slo-scaler plan --problem FILE [--format json|table]`: solve one sizing problem.
//!
//! The input and output schemas are [`crate::sizing::Problem`] and
//! [`crate::sizing::FleetPlan`] (JSON, documented in the README).

use std::path::PathBuf;

use anyhow::Context;

use crate::sizing::{FleetPlan, Problem, plan_fleet};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The plan as JSON (what other tools read).
    Json,
    /// A table for people.
    Table,
}

/// `plan` arguments.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The problem as JSON (`-` reads standard input).
    #[arg(long)]
    pub problem: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// Reads, solves, prints.
pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let text = if args.problem.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the problem from stdin")?
    } else {
        std::fs::read_to_string(&args.problem)
            .with_context(|| format!("reading problem file {}", args.problem.display()))?
    };
    let problem: Problem = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a sizing problem", args.problem.display()))?;
    let plan = plan_fleet(&problem)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Table => print!("{}", table(&plan)),
    }
    Ok(())
}

/// The plan as an aligned table, one line per model, reasons below.
pub fn table(plan: &FleetPlan) -> String {
    let mut out = format!(
        "{:<28} {:>8} {:>10} {:>10}  replicas\n",
        "model", "feasible", "capacity", "$/hour"
    );
    for m in &plan.models {
        let replicas = m
            .replicas
            .iter()
            .map(|(v, n)| format!("{v}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{:<28} {:>8} {:>10.2} {:>10.2}  {replicas}\n",
            m.name,
            if m.feasible { "yes" } else { "NO" },
            m.capacity,
            m.cost_per_hour
        ));
    }
    out.push_str(&format!("total {:.2} $/hour\n", plan.total_cost_per_hour));
    for m in &plan.models {
        out.push_str(&format!("  {}: {}\n", m.name, m.reason));
    }
    out
}
