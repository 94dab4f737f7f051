//! The benchmark's yardstick: the cheapest possible answer to a forward-auth check on this machine. An actix-web
//! server with the same worker count as tokengate that answers `200` with an empty body to any method on
//! `/verify` and does nothing else (no token parsing, no cache, no headers). `bench/run` reports tokengate's cache-hit
//! throughput as a ratio to this.
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

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    actix_web::rt::System::new().block_on(async move {
        let server =
            HttpServer::new(|| App::new().route("/verify", web::route().to(|| async { HttpResponse::Ok().finish() })))
                .workers(workers)
                .shutdown_timeout(0)
                .bind(&args.listen)?
                .run();
        println!("ready http://{}/verify", args.listen);
        server.await
    })
}
