//! What locality-aware scheduling buys: the real schedulers distribute a
//! request stream over simulated back-end nodes (LRU caches, disks, the LARD
//! paper's cost model) for several cluster sizes.
//!
//!   cargo run --release --example locality
//!   cargo run --release --example locality -- --nodes 1,2,4,8,16 --cache-mb 32 \
//!       --alpha 0.8 --json --plot locality.svg
//!   cargo run --release --example locality -- --trace /var/log/nginx/access.log

use std::path::PathBuf;
use std::process::ExitCode;

use tcpvs::schedulers::SchedulerKind;
use tcpvs::sim::cluster::{simulate, ClusterSpec, Report};
use tcpvs::sim::trace;
use tcpvs::sim::workload::{synthetic, SyntheticSpec};
use tcpvs::sim::Workload;
use tcpvs::table::SchedOptions;

const USAGE: &str = "\
usage: locality [--nodes 1,2,4,8,16] [--cache-mb M] [--per-node N] [--schedulers wrr,wlc,chash,lard,lardr]
                [--trace FILE | --alpha A --files F --requests N --seed S]
                [--opt scheduler.name=value ...] [--json] [--plot FILE.svg]
  --cache-mb M   each node's cache (default: an eighth of the working set)
  --per-node N   requests kept in flight per node (default: the LARD paper's
                 bound, (nodes-1)*65+24 in all)
  --trace FILE   replay an access log (Common/Combined Log Format, or `path size` lines)
  --opt S.K=V    a scheduler option, e.g. --opt chash.factor=150 --opt lard.high=40";

struct Args {
    nodes: Vec<usize>,
    cache_mb: Option<f64>,
    /// Requests kept in flight per node (default: the LARD paper's bound).
    per_node: Option<usize>,
    schedulers: Vec<SchedulerKind>,
    /// Scheduler options by scheduler name.
    options: std::collections::BTreeMap<String, SchedOptions>,
    trace: Option<PathBuf>,
    synthetic: SyntheticSpec,
    json: bool,
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("locality: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let workload = load_workload(&args)?;
    let working_set = workload.working_set_bytes();
    let cache_bytes = match args.cache_mb {
        Some(mb) => (mb * 1024.0 * 1024.0) as u64,
        None => (working_set / 8).max(1),
    };
    if !args.json {
        println!(
            "{} requests over {} files, working set {:.1} MiB, cache per node {:.1} MiB ({:.1}x smaller)",
            workload.requests.len(),
            workload.paths.len(),
            working_set as f64 / 1048576.0,
            cache_bytes as f64 / 1048576.0,
            working_set as f64 / cache_bytes as f64
        );
    }
    let mut reports = Vec::new();
    for &nodes in &args.nodes {
        let mut spec = ClusterSpec::new(nodes, cache_bytes);
        spec.outstanding = args.per_node.map(|n| n * nodes);
        for &kind in &args.schedulers {
            let options = args.options.get(kind.name()).cloned().unwrap_or_default();
            reports.push(simulate(kind, &options, &spec, &workload)?);
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print_table(&reports);
    }
    if let Some(path) = &args.plot {
        plot(&reports, &args.schedulers, path)?;
        if !args.json {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

fn load_workload(args: &Args) -> Result<Workload, String> {
    let Some(path) = &args.trace else {
        return Ok(synthetic(&args.synthetic));
    };
    let (workload, report) = trace::parse_file(path).map_err(|e| e.to_string())?;
    if report.malformed > 0 && !args.json {
        let first = report
            .first_malformed
            .as_ref()
            .map(|(line, why)| format!(" (first: line {line}: {why})"))
            .unwrap_or_default();
        eprintln!(
            "locality: {} of {} lines malformed and skipped{first}",
            report.malformed, report.lines
        );
    }
    Ok(workload)
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<10} {:>5} {:>9} {:>14} {:>10} {:>14}",
        "scheduler", "nodes", "hit rate", "throughput/s", "imbalance", "disk MiB"
    );
    for r in reports {
        println!(
            "{:<10} {:>5} {:>9.3} {:>14.0} {:>10.2} {:>14.1}",
            r.scheduler,
            r.nodes,
            r.hit_rate,
            r.throughput_rps,
            r.imbalance,
            r.disk_bytes as f64 / 1048576.0
        );
    }
}

/// Throughput against cluster size, one line per scheduler (the shape of the
/// LARD paper's figures).
fn plot(reports: &[Report], schedulers: &[SchedulerKind], path: &PathBuf) -> Result<(), String> {
    use plotters::prelude::*;
    let max_nodes = reports.iter().map(|r| r.nodes).max().unwrap_or(1) as f64;
    let max_rps = reports.iter().map(|r| r.throughput_rps).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let error = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput by cluster size (simulated)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_nodes * 1.05, 0.0..max_rps * 1.1)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("back-end nodes")
        .y_desc("requests per second")
        .draw()
        .map_err(|e| error(&e))?;
    for (i, kind) in schedulers.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = reports
            .iter()
            .filter(|r| r.scheduler == kind.name())
            .map(|r| (r.nodes as f64, r.throughput_rps))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| error(&e))?
            .label(kind.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| error(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        nodes: vec![1, 2, 4, 8, 16],
        cache_mb: None,
        per_node: None,
        schedulers: vec![
            SchedulerKind::Wrr,
            SchedulerKind::Wlc,
            SchedulerKind::Chash,
            SchedulerKind::Lard,
            SchedulerKind::Lardr,
        ],
        options: Default::default(),
        trace: None,
        synthetic: SyntheticSpec::default(),
        json: false,
        plot: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--nodes" => parsed.nodes = list(&value("--nodes")?, "--nodes")?,
            "--cache-mb" => parsed.cache_mb = Some(number(&value("--cache-mb")?, "--cache-mb")?),
            "--per-node" => parsed.per_node = Some(number(&value("--per-node")?, "--per-node")?),
            "--alpha" => parsed.synthetic.alpha = number(&value("--alpha")?, "--alpha")?,
            "--files" => parsed.synthetic.files = number(&value("--files")?, "--files")?,
            "--requests" => {
                parsed.synthetic.requests = number(&value("--requests")?, "--requests")?
            }
            "--seed" => parsed.synthetic.seed = number(&value("--seed")?, "--seed")?,
            "--trace" => parsed.trace = Some(value("--trace")?.into()),
            "--plot" => parsed.plot = Some(value("--plot")?.into()),
            "--json" => parsed.json = true,
            "--opt" => {
                let text = value("--opt")?;
                let parsed_opt = text
                    .split_once('.')
                    .and_then(|(sched, rest)| rest.split_once('=').map(|(k, v)| (sched, k, v)));
                let Some((sched, key, val)) = parsed_opt else {
                    return Err(format!("--opt {text}: write scheduler.name=value"));
                };
                parsed
                    .options
                    .entry(sched.to_string())
                    .or_default()
                    .insert(key.to_string(), val.to_string());
            }
            "--schedulers" => {
                parsed.schedulers = value("--schedulers")?
                    .split(',')
                    .map(|name| {
                        name.trim()
                            .parse()
                            .map_err(|e: tcpvs::schedulers::UnknownScheduler| e.to_string())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if parsed.nodes.is_empty() || parsed.nodes.contains(&0) {
        return Err("--nodes: give counts of at least 1".into());
    }
    Ok(parsed)
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{name}: `{text}` is not a number"))
}

fn list(text: &str, name: &str) -> Result<Vec<usize>, String> {
    text.split(',').map(|item| number(item, name)).collect()
}
