//! Logs: tracing-subscriber, human-readable by default, one JSON object per line when
//! `log.format = "json"`. `RUST_LOG` wins over `log.level` when set. Logs go to stderr
//! so stdout stays for the banner and command output.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `rust_log` is the `RUST_LOG` value, if any (passed
/// in rather than read here, like every other piece of environment).
pub fn init(config: &LogConfig, rust_log: Option<&str>) {
    let filter = rust_log
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    // `try_init`: a second init (tests, an embedding program) is not an error.
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
    };
}
