//! The standard `process_*` metrics (CPU seconds, memory, file descriptors, start
//! time, threads), read from `/proc/self` at each scrape and rendered in the
//! Prometheus text format, with the names and meanings of the official client
//! libraries, so dashboards and alerts written for any Prometheus-instrumented
//! process work unchanged.
//!
//! Rendered here rather than through the `metrics` facade: its counters are whole
//! numbers, and `process_cpu_seconds_total` is a fraction of seconds. On a system
//! without `/proc` (not Linux) nothing is rendered; a value that cannot be read is
//! left out rather than guessed.

use std::fmt::Write as _;

/// One process metric: name, type, HELP text, value.
type Sample = (&'static str, &'static str, &'static str, f64);

/// What `/proc` says of this process now.
#[derive(Debug, Default, PartialEq)]
struct Process {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    threads: Option<f64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

/// Appends the process metrics to a Prometheus text exposition.
pub(crate) fn render(out: &mut String) {
    let process = read();
    let samples: [(Option<f64>, &str, &str, &str); 7] = [
        (
            process.cpu_seconds,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        ),
        (
            process.resident_bytes,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        ),
        (
            process.virtual_bytes,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        ),
        (
            process.start_time_seconds,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        ),
        (
            process.open_fds,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        ),
        (
            process.max_fds,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        ),
        (
            process.threads,
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
        ),
    ];
    for sample in samples
        .into_iter()
        .filter_map(|(value, name, kind, help)| value.map(|v| (name, kind, help, v)))
    {
        write_sample(out, sample);
    }
}

fn write_sample(out: &mut String, (name, kind, help, value): Sample) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

#[cfg(target_os = "linux")]
fn read() -> Process {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let boot = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as f64);
    let ticks = rustix::param::clock_ticks_per_second();
    let page = rustix::param::page_size();
    Process {
        open_fds,
        max_fds: max_open_files(&limits),
        ..parse(&stat, &boot, ticks, page as u64)
    }
}

#[cfg(not(target_os = "linux"))]
fn read() -> Process {
    Process::default()
}

/// The `/proc/self/stat` fields (after the command name, which may hold spaces and
/// parentheses, so the split is at its last `)`), with `/proc/stat`'s boot time.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse(stat: &str, proc_stat: &str, ticks_per_second: u64, page_size: u64) -> Process {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Process::default();
    };
    // `rest` starts at field 3 (state); proc(5) numbers fields from 1.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = ticks_per_second.max(1) as f64;
    let boot_time = proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|secs| secs.trim().parse::<u64>().ok());
    Process {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(user, system)| (user + system) as f64 / ticks),
        threads: field(20).map(|n| n as f64),
        start_time_seconds: field(22)
            .zip(boot_time)
            .map(|(start, boot)| boot as f64 + start as f64 / ticks),
        virtual_bytes: field(23).map(|n| n as f64),
        resident_bytes: field(24).map(|pages| (pages * page_size) as f64),
        ..Process::default()
    }
}

/// The soft limit on open files from `/proc/self/limits`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse::<u64>().ok().map(|n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (devicegraph (x) 1) S 1 4242 4242 0 -1 4194560 2456 0 0 0 \
        250 125 0 0 20 0 9 0 7000 1234567168 3000 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17103 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn reads_the_fields_after_the_command_name() {
        let process = parse(STAT, "cpu  1 2 3\nbtime 1700000000\n", 100, 4096);
        assert_eq!(process.cpu_seconds, Some(3.75));
        assert_eq!(process.threads, Some(9.0));
        assert_eq!(process.start_time_seconds, Some(1_700_000_070.0));
        assert_eq!(process.virtual_bytes, Some(1_234_567_168.0));
        assert_eq!(process.resident_bytes, Some(3000.0 * 4096.0));
        assert_eq!(parse("garbage", "", 100, 4096), Process::default());
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
            Max cpu time              unlimited            unlimited            seconds\n\
            Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(
            max_open_files("Max open files unlimited unlimited files"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn renders_every_family_with_help_and_type_on_linux() {
        let mut out = String::from("# TYPE x counter\nx 1\n");
        render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
        ] {
            assert!(out.contains(&format!("\n# HELP {name} ")), "{name}: {out}");
            assert!(out.contains(&format!("\n# TYPE {name} ")), "{name}: {out}");
        }
        assert!(
            out.contains("x 1\n\n# HELP"),
            "families are separated: {out}"
        );
    }
}
