//! Which series an expression names: the metric names and label matchers in PromQL, and the series in a /metrics
//! exposition. Not a PromQL parser (promtool judges syntax); just enough to compare names with what tokengate exports.

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: String,
    pub value: String,
}

/// A vector selector: `metric{label op "value", …}`. `metric` is empty for a selector without a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

/// Words that are neither functions nor metrics. Functions and aggregations are recognised by the `(` after them.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
];
/// Keywords followed by a list of label names, e.g. `sum by (le)`, `on (job) group_left (pod)`.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index after the string literal that starts at `i` (`"…"`, `'…'` with escapes, or raw `` `…` ``), and its content.
fn read_string(chars: &[char], i: usize) -> (usize, String) {
    let quote = chars.get(i).copied().unwrap_or('"');
    let mut out = String::new();
    let mut j = i + 1;
    while let Some(&c) = chars.get(j) {
        j += 1;
        if c == quote {
            break;
        }
        if c == '\\' && quote != '`' {
            if let Some(&escaped) = chars.get(j) {
                out.push(escaped);
                j += 1;
            }
            continue;
        }
        out.push(c);
    }
    (j, out)
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The `label op "value"` pairs between the `{` at `i` and its `}`, and the index after the `}`.
fn read_matchers(chars: &[char], i: usize) -> (Vec<Matcher>, usize) {
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        j = skip_spaces(chars, j);
        match chars.get(j) {
            None => return (out, j),
            Some('}') => return (out, j + 1),
            Some(',') => {
                j += 1;
                continue;
            }
            _ => {}
        }
        let start = j;
        while chars.get(j).is_some_and(|&c| is_ident(c)) {
            j += 1;
        }
        let label: String = chars[start..j].iter().collect();
        j = skip_spaces(chars, j);
        let op_start = j;
        while chars.get(j).is_some_and(|&c| matches!(c, '=' | '!' | '~')) {
            j += 1;
        }
        let op: String = chars[op_start..j].iter().collect();
        j = skip_spaces(chars, j);
        let (next, value) = read_string(chars, j);
        assert!(
            !label.is_empty() && !op.is_empty() && next > j,
            "cannot read the matchers in {}",
            chars.iter().collect::<String>()
        );
        j = next;
        out.push(Matcher { label, op, value });
    }
}

/// Every vector selector in `expr`, in order.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if matches!(c, '"' | '\'' | '`') {
            i = read_string(&chars, i).0;
        } else if c == '[' {
            // A range or subquery: durations only.
            while chars.get(i).is_some_and(|&c| c != ']') {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let (matchers, next) = read_matchers(&chars, i);
            let metric = matchers
                .iter()
                .find(|m| m.label == "__name__" && m.op == "=")
                .map(|m| m.value.clone())
                .unwrap_or_default();
            out.push(Selector { metric, matchers });
            i = next;
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (`0.99`, `5m`, `1e3`).
            while chars.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || c == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while chars.get(i).is_some_and(|&c| is_ident(c)) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = skip_spaces(&chars, i);
            let next = chars.get(after).copied();
            // `sum by (le) (…)`: an aggregation whose modifier comes before its arguments.
            let mut end = after;
            while chars.get(end).is_some_and(|&c| is_ident(c)) {
                end += 1;
            }
            let next_word: String = chars[after..end].iter().collect();
            let modifier_follows = next_word == "by" || next_word == "without";
            if LABEL_LISTS.contains(&word.as_str()) && next == Some('(') {
                while chars.get(i).is_some_and(|&c| c != ')') {
                    i += 1;
                }
                i += 1;
            } else if next == Some('(') || modifier_follows || KEYWORDS.contains(&word.as_str()) {
                // A function or aggregation (its arguments are read next), or a keyword.
            } else if next == Some('{') {
                let (matchers, end) = read_matchers(&chars, after);
                out.push(Selector { metric: word, matchers });
                i = end;
            } else {
                out.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The series of a text exposition (format 0.0.4): each sample line's name and labels.
pub fn exposition_series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let chars: Vec<char> = line.chars().collect();
        let end = chars.iter().position(|&c| c == '{' || c == ' ').unwrap_or(chars.len());
        let name: String = chars[..end].iter().collect();
        let labels = if chars.get(end) == Some(&'{') {
            read_matchers(&chars, end)
                .0
                .into_iter()
                .map(|m| (m.label, m.value))
                .collect()
        } else {
            Vec::new()
        };
        out.push((name, labels));
    }
    out
}

#[test]
fn the_reader_finds_metrics_and_matchers_and_skips_the_rest() {
    let expr = r#"sum by (le, result) (rate(a_total{x="1", y=~"p|q"}[5m] offset 1h))
        / on (job) group_left (pod) b and ignoring(door) c:recorded > 0.5 * histogram_quantile(0.99, d_bucket)
        or label_replace(e, "dst", "$1", "src", "(.*)") unless {__name__="f", g!="h\"i"} == bool 1e3"#;
    let found = selectors(expr);
    let names: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_total", "b", "c:recorded", "d_bucket", "e", "f"]);
    assert_eq!(
        found[0].matchers,
        [
            Matcher {
                label: "x".into(),
                op: "=".into(),
                value: "1".into()
            },
            Matcher {
                label: "y".into(),
                op: "=~".into(),
                value: "p|q".into()
            },
        ]
    );
    assert_eq!(found[5].matchers[1].value, "h\"i");
    assert_eq!(found[5].matchers[1].op, "!=");

    let series = exposition_series(
        "# HELP a x\n# TYPE a counter\na_total{result=\"hit\",kind=\"a b\"} 3\nprocess_open_fds 12\n\n",
    );
    assert_eq!(
        series,
        [
            (
                "a_total".to_string(),
                vec![
                    ("result".to_string(), "hit".to_string()),
                    ("kind".to_string(), "a b".to_string())
                ]
            ),
            ("process_open_fds".to_string(), vec![]),
        ]
    );
}
