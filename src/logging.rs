//! Log output: env_logger with `RUST_LOG` (default `info`), as text or one JSON object per line.

use std::io::Write;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    // A second init (tests, or a subcommand after another) keeps the first logger.
    let _ = builder.try_init();
}
