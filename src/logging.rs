//! Log output: env_logger with `RUST_LOG` (default `info`), as text or one JSON object per line. Decision lines
//! (target `tokengate::decision`) carry their fields as structured key-values: top-level members in JSON,
//! `key=value` in text, with unknown (null) fields left out.

use std::io::Write;

use log::kv::{Error, Key, Value, VisitSource, VisitValue};
use serde_json::{Map, Value as Json};

use crate::config::LogFormat;

/// The log target of the one line per check.
pub const DECISION_TARGET: &str = "tokengate::decision";

pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Json => {
            builder.format(|buf, record| {
                let mut line = Map::new();
                line.insert("ts".into(), Json::String(buf.timestamp_millis().to_string()));
                if record.target() != DECISION_TARGET {
                    line.insert("level".into(), record.level().as_str().into());
                    line.insert("target".into(), record.target().into());
                    line.insert("msg".into(), record.args().to_string().into());
                }
                let _ = record.key_values().visit(&mut JsonFields(&mut line));
                writeln!(buf, "{}", Json::Object(line))
            });
        }
        LogFormat::Text => {
            builder.format(|buf, record| {
                if record.target() == DECISION_TARGET {
                    let mut text = format!("ts={}", buf.timestamp_millis());
                    let _ = record.key_values().visit(&mut TextFields(&mut text));
                    return writeln!(buf, "{text}");
                }
                let mut kvs = String::new();
                let _ = record.key_values().visit(&mut TextFields(&mut kvs));
                writeln!(
                    buf,
                    "[{} {:<5} {}] {}{kvs}",
                    buf.timestamp_millis(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            });
        }
    }
    // A second init (tests, or a subcommand after another) keeps the first logger.
    let _ = builder.try_init();
}

/// A key-value as JSON; `None` for null (left out).
fn json_value(value: &Value<'_>) -> Option<Json> {
    struct ToJson(Option<Json>);
    impl<'v> VisitValue<'v> for ToJson {
        fn visit_any(&mut self, value: Value) -> Result<(), Error> {
            self.0 = Some(Json::String(value.to_string()));
            Ok(())
        }
        fn visit_null(&mut self) -> Result<(), Error> {
            self.0 = None;
            Ok(())
        }
        fn visit_u64(&mut self, value: u64) -> Result<(), Error> {
            self.0 = Some(value.into());
            Ok(())
        }
        fn visit_i64(&mut self, value: i64) -> Result<(), Error> {
            self.0 = Some(value.into());
            Ok(())
        }
        fn visit_bool(&mut self, value: bool) -> Result<(), Error> {
            self.0 = Some(value.into());
            Ok(())
        }
        fn visit_str(&mut self, value: &str) -> Result<(), Error> {
            self.0 = Some(value.into());
            Ok(())
        }
    }
    let mut v = ToJson(None);
    value.visit(&mut v).ok()?;
    v.0
}

struct JsonFields<'a>(&'a mut Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
        if let Some(v) = json_value(&value) {
            self.0.insert(key.as_str().to_string(), v);
        }
        Ok(())
    }
}

/// ` key=value`, quoting (with escapes) any value that holds whitespace, quotes, `=` or control characters, so a
/// value can never forge another field or another line.
struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
        let Some(v) = json_value(&value) else { return Ok(()) };
        let text = match &v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let plain = !text.is_empty()
            && !text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
        if plain {
            self.0.push_str(&format!(" {key}={text}"));
        } else {
            self.0.push_str(&format!(" {key}={text:?}"));
        }
        Ok(())
    }
}
