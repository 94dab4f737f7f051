//! The benchmark's gRPC load client (no gRPC load tool is on the registries this project uses): Envoy-shaped
//! `envoy.service.auth.v3.Authorization/Check` calls against tokengate's gRPC door, rotating over a file of tokens,
//! with a fixed number of calls in flight over a few HTTP/2 connections (as Envoy multiplexes its checks). Prints
//! the same `BENCH requests=... rps=... p50_us=... p99_us=... status_errors=...` line as bench/rotate.lua for wrk,
//! so bench/run reads both alike; a call answered with anything but OK counts as a status error.
//!
//!     cargo run --release --example grpcload -- --url http://127.0.0.1:8081 --tokens tokens.txt --duration 10
//!
//! `--idle N` instead opens N connections, makes one health call on each so that the HTTP/2 connection is set up
//! on both ends, prints `ready`, and holds them until stdin closes: bench/run reads tokengate's memory meanwhile.

use std::io::BufRead;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser)]
struct Args {
    /// tokengate's gRPC door, e.g. http://127.0.0.1:8081.
    #[arg(long)]
    url: String,
    /// One token per line; each call takes the next.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Calls in flight at any time, spread over the connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Open this many idle connections and hold them (see the module doc).
    #[arg(long)]
    idle: Option<usize>,
}

/// What Envoy sends for `GET /api/items` with this bearer token.
fn envoy_check(token: &str) -> CheckRequest {
    let headers = [
        (":authority", "app.example.com"),
        (":method", "GET"),
        (":path", "/api/items"),
        ("accept", "*/*"),
        ("user-agent", "curl/8.0"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6f1c6a2e-1b7d-4c55-9d1e-2f0a3b4c5d6e"),
    ];
    let mut map: std::collections::HashMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.insert("authorization".into(), format!("Bearer {token}"));
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1".into(),
                    method: "GET".into(),
                    host: "app.example.com".into(),
                    path: "/api/items".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: map,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn connect(url: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(url.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    status_errors: u64,
    connect_errors: u64,
}

async fn load(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let path = args.tokens.as_ref().ok_or("--tokens is required")?;
    let tokens: Vec<String> = std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    // Requests built up front, so the client's per-call cost is only encoding and transport.
    let requests: std::sync::Arc<Vec<CheckRequest>> =
        std::sync::Arc::new(tokens.iter().map(|t| envoy_check(t)).collect());
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&args.url).await?);
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    let step = args.concurrency.max(1);
    for i in 0..step {
        let mut client = AuthorizationClient::new(channels[i % channels.len()].clone());
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut next = i;
            while Instant::now() < until {
                let req = requests[next % requests.len()].clone();
                next += step;
                let t0 = Instant::now();
                match client.check(req).await {
                    Ok(resp) => {
                        let ok = resp.get_ref().status.as_ref().is_some_and(|s| s.code == 0);
                        tally
                            .latencies_us
                            .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                        if !ok {
                            tally.status_errors += 1;
                        }
                    }
                    Err(_) => tally.connect_errors += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_us.extend(t.latencies_us);
        all.status_errors += t.status_errors;
        all.connect_errors += t.connect_errors;
    }
    let secs = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |p: f64| {
        all.latencies_us
            .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mean = if n == 0 {
        0.0
    } else {
        all.latencies_us.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64
    };
    println!(
        "BENCH requests={n} duration_s={secs:.3} rps={:.1} p50_us={} p90_us={} p99_us={} max_us={} mean_us={mean:.0} \
         status_errors={} connect_errors={} read_errors=0 write_errors=0 timeouts=0",
        n as f64 / secs,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.latencies_us.last().copied().unwrap_or(0),
        all.status_errors,
        all.connect_errors,
    );
    Ok(())
}

async fn idle(url: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = connect(url).await?;
        let mut health = HealthClient::new(channel.clone());
        health.check(HealthCheckRequest { service: String::new() }).await?;
        held.push(channel);
    }
    println!("ready {}", held.len());
    // Hold until bench/run closes stdin (or ends this process).
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|read| read > 0) {}
    })
    .await?;
    drop(held);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.idle {
            Some(n) => idle(&args.url, n).await,
            None => load(&args).await,
        }
    })
}
