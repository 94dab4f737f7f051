//! The benchmark's yardstick: the cheapest possible answer to a forward-auth check on this machine. An actix-web
//! server with the same worker count as tokengate that answers `200` with an empty body to any method on
//! `/verify`, with the same seven identity headers a cached allow of the benchmark's tokens carries (static values
//! of the same lengths), and does nothing else (no token parsing, no cache). The bytes on the wire are then the
//! same, and `bench/run`'s ratio of tokengate's cache-hit throughput to this measures tokengate's own work.
//!
//!     cargo run --release --example baseline -- --listen 127.0.0.1:18080 --workers 2

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Same meaning as tokengate's `server.workers`; defaults to the number of CPUs like it.
    #[arg(long)]
    workers: Option<usize>,
}

/// What tokengate sends for a token minted by examples/devidp (`spec(i)` with a three-digit i), value lengths alike.
const IDENTITY: [(&str, &str); 7] = [
    ("x-auth-request-user", "300000000000000123"),
    ("x-auth-request-preferred-username", "user123"),
    ("x-auth-request-email", "user123@example.com"),
    ("x-auth-request-client-id", "web@300000000000000001"),
    ("x-auth-request-scopes", "openid profile email"),
    ("x-auth-request-roles", "editor,viewer"),
    ("x-auth-request-org-id", "200000000000000001"),
];

async fn allow() -> HttpResponse {
    let mut b = HttpResponse::Ok();
    for h in IDENTITY {
        b.insert_header(h);
    }
    b.finish()
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| App::new().route("/verify", web::route().to(allow)))
            .workers(workers)
            .shutdown_timeout(0)
            .bind(&args.listen)?
            .run();
        println!("ready http://{}/verify", args.listen);
        server.await
    })
}
