//! `devicegraph-sim`: the ThingSpace simulator as its own server.
//!
//! Prints its base URL and a sample account, IMEI and campaign, logs its resident
//! memory once the fleet is built, and stops gracefully on Ctrl-C.

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use devicegraph_sim::{Faults, RetryAfterFormat, SimConfig, spawn};

/// A deterministic, fault-injecting simulator of the Verizon ThingSpace APIs.
#[derive(Debug, Parser)]
#[command(name = "devicegraph-sim", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Seed of the generated fleet (same seed, same data).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of devices in the fleet.
    #[arg(long, default_value_t = 10_000)]
    devices: u64,
    #[arg(long, default_value = "sim-client")]
    client_id: String,
    #[arg(long, default_value = "sim-secret")]
    client_secret: String,
    #[arg(long, default_value = "sim-user")]
    username: String,
    #[arg(long, default_value = "sim-password")]
    password: String,
    /// Devices per campaign-report page.
    #[arg(long, default_value_t = 1_000)]
    campaign_page_size: usize,
    /// Devices per device-details page.
    #[arg(long, default_value_t = 1_000)]
    details_page_size: usize,
    /// Records per provisioning-history response.
    #[arg(long, default_value_t = 500)]
    provisioning_page_size: usize,
    /// Devices per page of an account's device list.
    #[arg(long, default_value_t = 1_000)]
    account_page_size: usize,
    /// Added latency per request, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Share of requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Retry-After of the 429 answers, seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Share of requests whose connection is closed unanswered.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Share of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    stall_rate: f64,
    /// Share of requests closed after the headers and part of the body.
    #[arg(long, default_value_t = 0.0)]
    drop_mid_body_rate: f64,
    /// Share of requests that stall after the headers and part of the body.
    #[arg(long, default_value_t = 0.0)]
    stall_mid_body_rate: f64,
    /// How the 429 answers write Retry-After: `seconds` or `date` (an HTTP-date).
    #[arg(long, default_value = "seconds", value_parser = parse_retry_after_format)]
    retry_after_format: RetryAfterFormat,
    /// Paged endpoints never advance.
    #[arg(long)]
    broken_pagination: bool,
    /// Endpoints the faults apply to (comma-separated names, default the data endpoints).
    #[arg(long, value_delimiter = ',')]
    fault_endpoints: Vec<String>,
}

fn parse_retry_after_format(text: &str) -> Result<RetryAfterFormat, String> {
    match text {
        "seconds" => Ok(RetryAfterFormat::Seconds),
        "date" => Ok(RetryAfterFormat::Date),
        other => Err(format!("expected `seconds` or `date`, got {other:?}")),
    }
}

impl Cli {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let mut faults = Faults::default();
        let endpoints = self
            .fault_endpoints
            .iter()
            .map(|name| {
                devicegraph_sim::Endpoint::from_name(name.trim())
                    .with_context(|| format!("--fault-endpoints: unknown endpoint {name:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        faults.apply(&devicegraph_sim::FaultsPatch {
            latency_ms: Some(self.latency_ms),
            jitter_ms: Some(self.jitter_ms),
            error_rate: Some(self.error_rate),
            rate_limit_rate: Some(self.rate_limit_rate),
            retry_after_secs: Some(self.retry_after_secs),
            retry_after_format: Some(self.retry_after_format),
            drop_rate: Some(self.drop_rate),
            stall_rate: Some(self.stall_rate),
            drop_mid_body_rate: Some(self.drop_mid_body_rate),
            stall_mid_body_rate: Some(self.stall_mid_body_rate),
            broken_pagination: Some(self.broken_pagination),
            endpoints: Some(endpoints),
            ..Default::default()
        })?;
        let config = SimConfig {
            seed: self.seed,
            devices: self.devices,
            client_id: self.client_id,
            client_secret: self.client_secret,
            username: self.username,
            password: self.password,
            faults,
            campaign_page_size: self.campaign_page_size,
            details_page_size: self.details_page_size,
            provisioning_page_size: self.provisioning_page_size,
            account_page_size: self.account_page_size,
            ..SimConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let listen = cli.listen.clone();
    let config = cli.into_config()?;
    let devices = config.devices;
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = spawn(config, listener)
        .await
        .context("starting the simulator")?;
    let built = started.elapsed();
    let catalog = sim.catalog();
    println!("devicegraph-sim listening: base URL {}", sim.base_url());
    println!(
        "control API: {}/_sim/catalog | /_sim/stats | /_sim/faults | /_sim/reset",
        sim.root_url()
    );
    if let Some(account) = catalog.accounts.first() {
        let imei = catalog
            .sample_imeis
            .get(account)
            .and_then(|s| s.first())
            .map_or("-", String::as_str);
        println!("sample: account {account} imei {imei}");
    }
    if let Some(c) = catalog.campaigns.iter().max_by_key(|c| c.devices) {
        println!(
            "sample: campaign {} ({} devices) in account {}",
            c.id, c.devices, c.account
        );
    }
    match devicegraph_sim::resident_memory_bytes() {
        Some(rss) => println!(
            "memory: rss={} MiB for {devices} devices (ready in {} ms)",
            rss / (1024 * 1024),
            built.as_millis()
        ),
        None => println!(
            "memory: rss unavailable for {devices} devices (ready in {} ms)",
            built.as_millis()
        ),
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("shutting down");
    sim.shutdown().await;
    Ok(())
}
