//! The JSON output of `--json FILE`, written by hand (flat data; no serde build needed).

use crate::table::{Report, Value};
use crate::targets::Goal;
use std::fmt::Write as _;

/// Quotes and escapes a string for JSON.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value for one measured value.
fn value(v: &Value) -> String {
    match v {
        Value::Num(x) if x.is_finite() => format!("{x}"),
        Value::Num(_) => "null".to_string(),
        Value::Text(t) => quote(t),
        Value::List(xs) => {
            let items: Vec<String> = xs.iter().map(|&x| value(&Value::Num(x))).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// The whole report as JSON: `{"machine": {...}, "columns": [...], "results": {peer: {key: v}},
/// "targets": [{row, key, figure, goal, limit, measured, met, spread, detail}], "notes": [...]}`.
pub fn render(report: &Report, machine: &[(&str, String)]) -> String {
    let mut out = String::from("{\n  \"machine\": {");
    let fields: Vec<String> = machine
        .iter()
        .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
        .collect();
    out.push_str(&fields.join(", "));
    out.push_str("},\n  \"columns\": [\n");
    let cols: Vec<String> = report
        .columns
        .iter()
        .map(|c| {
            format!(
                "    {{\"key\": {}, \"scenario\": {}, \"header\": {}, \"legend\": {}}}",
                quote(c.key),
                quote(c.scenario),
                quote(c.header),
                quote(c.legend)
            )
        })
        .collect();
    out.push_str(&cols.join(",\n"));
    out.push_str("\n  ],\n  \"results\": {\n");
    let rows: Vec<String> = report
        .rows
        .iter()
        .map(|r| {
            let vals: Vec<String> = r
                .values
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), value(v)))
                .collect();
            format!("    {}: {{{}}}", quote(r.peer), vals.join(", "))
        })
        .collect();
    out.push_str(&rows.join(",\n"));
    out.push_str("\n  },\n  \"targets\": [\n");
    let targets: Vec<String> = report
        .targets
        .iter()
        .map(|t| {
            let (goal, limit) = match t.goal {
                Goal::AtMost(l) => ("<=", l),
                Goal::AtLeast(l) => (">=", l),
            };
            format!(
                "    {{\"row\": {}, \"key\": {}, \"figure\": {}, \"goal\": {}, \"limit\": {}, \
                 \"measured\": {}, \"met\": {}, \"load_caveat\": {}, \"spread\": {}, \
                 \"detail\": {}}}",
                t.row,
                quote(t.key),
                quote(&t.figure),
                quote(goal),
                limit,
                t.measured
                    .map_or("null".to_string(), |x| value(&Value::Num(x))),
                t.met().map_or("null".to_string(), |m| m.to_string()),
                t.load_caveat,
                quote(&t.spread),
                quote(&t.detail)
            )
        })
        .collect();
    out.push_str(&targets.join(",\n"));
    out.push_str("\n  ],\n  \"notes\": [");
    let notes: Vec<String> = report.notes.iter().map(|n| quote(n)).collect();
    out.push_str(&notes.join(", "));
    out.push_str("]\n}\n");
    out
}
