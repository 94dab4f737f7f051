//! The development IdP as a process of its own, for the benchmark and the soak test (which kill and restart it).
//! Keeps its key and issued tokens in `--dir`, so a restarted process honours them.
//!
//!     cargo run --release --example devidp -- --listen 127.0.0.1:9999 --dir /tmp/idp --tokens 1000

use std::net::TcpListener;
use std::path::PathBuf;

use clap::Parser;
use tokengate::dev_idp::{DevIdp, Faults, TokenSpec};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Holds key.json (the API app key), tokens.txt (one issued token per line) and issuer.
    #[arg(long)]
    dir: PathBuf,
    /// Tokens to issue when tokens.txt does not exist yet.
    #[arg(long, default_value_t = 0)]
    tokens: usize,
    /// Latency added to every introspection.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

/// ZITADEL-shaped: roles, email, names, resource owner.
fn spec(i: usize) -> TokenSpec {
    TokenSpec {
        sub: format!("{}", 300_000_000_000_000_000u64 + i as u64),
        email: Some(format!("user{i}@example.com")),
        username: Some(format!("user{i}")),
        name: Some(format!("Given{i} Family{i}")),
        ..TokenSpec::default().roles(&["viewer", "editor"]).expires_in(24 * 3600)
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    actix_web::rt::System::new().block_on(async move {
        let (idp, server) = DevIdp::start(TcpListener::bind(&args.listen)?)?;
        let key = args.dir.join("key.json");
        match std::fs::read(&key) {
            Ok(bytes) => idp.register_key_file(&bytes).map_err(std::io::Error::other)?,
            Err(_) => {
                let written = idp.add_api_app(&args.dir, "tokengate").map_err(std::io::Error::other)?;
                std::fs::rename(written, &key)?;
            }
        }
        let tokens = args.dir.join("tokens.txt");
        match std::fs::read_to_string(&tokens) {
            Ok(text) => text.lines().enumerate().for_each(|(i, t)| idp.insert_token(t, spec(i))),
            Err(_) => {
                let list: Vec<String> = (0..args.tokens).map(|i| idp.mint(spec(i))).collect();
                std::fs::write(&tokens, list.join("\n") + "\n")?;
            }
        }
        idp.set_faults(Faults {
            latency_ms: args.latency_ms,
            ..Faults::default()
        });
        std::fs::write(args.dir.join("issuer"), idp.issuer())?;
        println!("ready {}", idp.issuer());
        server.await
    })
}
