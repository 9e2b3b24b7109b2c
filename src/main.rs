//! `devicegraph`: parse the command line, load the config, set up logs, serve.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devicegraph::Config;
use devicegraph::config::{self, ConfigError};
use devicegraph::state::TrustedDocuments;

/// See the `mimalloc` entry in Cargo.toml: measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Caching aggregation gateway: one GraphQL Device graph over Verizon ThingSpace.
#[derive(Debug, Parser)]
#[command(name = "devicegraph", version, about)]
struct Cli {
    /// Configuration file (TOML); `DEVICEGRAPH_*` variables override its keys.
    /// Default: config/default.toml, or the built-in copy of it when that file is absent.
    #[arg(long, global = true, env = "DEVICEGRAPH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the configuration: print every problem with its key; exit 1 if any.
    CheckConfig,
    /// Print the GraphQL schema (SDL).
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("devicegraph: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => runtime.block_on(async {
            match devicegraph::schema_sdl() {
                Ok(sdl) => {
                    print!("{sdl}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("devicegraph: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
        Command::CheckConfig => match load(cli.config.as_deref()) {
            (source, Ok(config)) => match TrustedDocuments::check(&config) {
                Ok(documents) => {
                    let documents = documents
                        .map(|n| format!(", {n} trusted document(s)"))
                        .unwrap_or_default();
                    println!("{source}: config OK ({}{documents})", config.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let e = config::redact_urls(&e.to_string());
                    eprintln!(
                        "{source}: 1 configuration problem(s):\n  graphql.trusted_documents: {e}"
                    );
                    ExitCode::FAILURE
                }
            },
            (source, Err(e)) => report(&source, &e),
        },
        Command::Serve => {
            let config = match load(cli.config.as_deref()) {
                (_, Ok(config)) => config,
                (source, Err(e)) => return report(&source, &e),
            };
            devicegraph::telemetry::init(&config.log, std::env::var("RUST_LOG").ok().as_deref());
            runtime.block_on(serve(config))
        }
    }
}

/// Loads the named config, else the default file, else the built-in default; returns
/// which one it was with the result.
fn load(path: Option<&Path>) -> (String, Result<Config, ConfigError>) {
    let default = Path::new(config::DEFAULT_PATH);
    match path {
        Some(path) => (
            path.display().to_string(),
            Config::load(path, std::env::vars()),
        ),
        None if default.exists() => (
            config::DEFAULT_PATH.to_owned(),
            Config::load(default, std::env::vars()),
        ),
        None => {
            let source = "built-in default config";
            (
                source.to_owned(),
                Config::from_toml_str(config::DEFAULT_TOML, source, std::env::vars()),
            )
        }
    }
}

/// Prints every problem. Messages never quote a secret, and any URL in them is
/// printed with its credentials masked all the same (`config::redact_urls`): a
/// problem may quote a mistyped value, and a URL's userinfo is a password.
fn report(source: &str, error: &ConfigError) -> ExitCode {
    let problems = error.problems();
    eprintln!("{source}: {} configuration problem(s):", problems.len());
    for problem in problems {
        eprintln!("  {}", config::redact_urls(&problem));
    }
    ExitCode::FAILURE
}

async fn serve(config: Config) -> ExitCode {
    let listen = config.server.listen;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("devicegraph: server.listen: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match devicegraph::run(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = config::redact_urls(&format!("{e:#}"));
            tracing::error!(error = %message, "devicegraph stopped");
            eprintln!("devicegraph: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
