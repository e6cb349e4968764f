//! The results of a run ([`Report`]: one row per peer, one column per measured quantity) and
//! their printing: one table per scenario (comfy-table), each at most 100 characters wide.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// Width the printed tables must fit in.
pub const TABLE_WIDTH: u16 = 100;

/// One measured value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A number, printed with the column's decimals.
    Num(f64),
    /// Repeated measurements of one figure, in run order (JSON and CSV only).
    List(Vec<f64>),
}

/// A column of the table: one quantity of one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The scenario that fills it.
    pub scenario: &'static str,
    /// Key in the JSON output.
    pub key: &'static str,
    /// Short header in the table.
    pub header: &'static str,
    /// What it means, with its unit (the legend under the table).
    pub legend: &'static str,
    /// Decimals to print.
    pub decimals: usize,
}

/// One peer's values.
#[derive(Debug, Clone)]
pub struct Row {
    /// The peer's name.
    pub peer: &'static str,
    /// `(column key, scenario that recorded it, value)`.
    pub values: Vec<(String, &'static str, Value)>,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Columns, in the order the scenarios ran.
    pub columns: Vec<Column>,
    /// Rows, in the order the peers were first seen.
    pub rows: Vec<Row>,
    /// Lines printed under the tables (scenario parameters, caveats).
    pub notes: Vec<String>,
    /// The issue-12 targets, evaluated once the scenarios have run.
    pub targets: Vec<Target>,
    /// The scenario running now: the one values are recorded for.
    pub current: &'static str,
}

/// A key or header made at run time (one per thread count), kept for the whole run: the
/// columns hold `&'static str`, and a run makes a few dozen of these.
pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl Report {
    /// Declares the columns of a scenario that is about to run.
    pub fn add_columns(&mut self, cols: &[Column]) {
        self.columns.extend_from_slice(cols);
    }

    /// Records `value` for `peer` in column `key`.
    pub fn set(&mut self, peer: &'static str, key: impl Into<String>, value: Value) {
        let key = key.into();
        let scenario = self.current;
        let row = match self.rows.iter().position(|r| r.peer == peer) {
            Some(i) => &mut self.rows[i],
            None => {
                self.rows.push(Row {
                    peer,
                    values: Vec::new(),
                });
                self.rows.last_mut().expect("just pushed")
            }
        };
        match row.values.iter_mut().find(|(k, _, _)| *k == key) {
            Some(slot) => slot.2 = value,
            None => row.values.push((key, scenario, value)),
        }
    }

    /// Records a number.
    pub fn num(&mut self, peer: &'static str, key: impl Into<String>, v: f64) {
        self.set(peer, key, Value::Num(v));
    }

    /// The value of `peer` in column `key`, if measured.
    pub fn get(&self, peer: &str, key: &str) -> Option<&Value> {
        let row = self.rows.iter().find(|r| r.peer == peer)?;
        row.values
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| v)
    }

    /// Adds a note under the tables.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// The scenarios that have columns, in run order.
    pub fn scenarios(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for c in &self.columns {
            if !out.contains(&c.scenario) {
                out.push(c.scenario);
            }
        }
        out
    }

    /// The columns of `scenario`.
    pub fn columns_of(&self, scenario: &str) -> Vec<Column> {
        self.columns
            .iter()
            .filter(|c| c.scenario == scenario)
            .copied()
            .collect()
    }

    /// The table of `scenario` as text cells: the header line, then one line per peer that
    /// has a value in it (numbers formatted with the column's decimals, `-` where none).
    pub fn grid(&self, scenario: &str) -> Vec<Vec<String>> {
        let cols = self.columns_of(scenario);
        let mut grid = vec![std::iter::once("peer".to_string())
            .chain(cols.iter().map(|c| c.header.to_string()))
            .collect::<Vec<_>>()];
        for row in &self.rows {
            if !cols.iter().any(|c| self.get(row.peer, c.key).is_some()) {
                continue;
            }
            let mut line = vec![row.peer.to_string()];
            for c in &cols {
                line.push(match self.get(row.peer, c.key) {
                    Some(Value::Num(v)) => format_num(*v, c.decimals),
                    Some(Value::List(_)) | None => "-".to_string(),
                });
            }
            grid.push(line);
        }
        grid
    }

    /// Every scenario's table as text, each followed by its legend, then the notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for sc in self.scenarios() {
            let grid = self.grid(sc);
            let mut table = Table::new();
            table
                .load_preset(presets::ASCII_MARKDOWN)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(TABLE_WIDTH)
                .set_header(grid[0].clone());
            for line in &grid[1..] {
                table.add_row(line.clone());
            }
            for i in 1..grid[0].len() {
                if let Some(col) = table.column_mut(i) {
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
            out.push_str(&format!("{sc}\n\n{table}\n"));
            let cols = self.columns_of(sc);
            let w = cols.iter().map(|c| c.header.len()).max().unwrap_or(0);
            for c in cols {
                out.push_str(&wrap(&format!("  {:<w$}  {}", c.header, c.legend), w + 4));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            for n in &self.notes {
                out.push_str(&wrap(&format!("  * {n}"), 4));
            }
        }
        out
    }
}

/// `text` wrapped at [`TABLE_WIDTH`] on spaces, continuation lines indented by `indent`.
pub fn wrap(text: &str, indent: usize) -> String {
    let width = TABLE_WIDTH as usize;
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.trim().is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
        } else if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        if word.is_empty() {
            line.push(' ');
        } else {
            line.push_str(word);
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// A number with thousands separators in its integer part.
pub fn format_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (s.clone(), String::new()),
    };
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}{grouped}{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(format_num(1234567.891, 1), "1,234,567.9");
        assert_eq!(format_num(-1000.0, 0), "-1,000");
        assert_eq!(format_num(12.0, 2), "12.00");
    }

    #[test]
    fn lines_are_wrapped_to_the_table_width() {
        let long = "word ".repeat(60);
        for line in wrap(&long, 4).lines() {
            assert!(line.chars().count() <= TABLE_WIDTH as usize, "{line}");
        }
    }
}

// The issue-12 targets' data, here with the report that holds them; `crate::targets`
// evaluates them from the report's figures.

/// Which way a figure must lie from its limit.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// `figure <= limit`.
    AtMost(f64),
    /// `figure >= limit`.
    AtLeast(f64),
}

impl Goal {
    pub fn met(self, x: f64) -> bool {
        match self {
            Goal::AtMost(l) => x <= l,
            Goal::AtLeast(l) => x >= l,
        }
    }

    pub fn text(self) -> String {
        match self {
            Goal::AtMost(l) => format!("<= {l}"),
            Goal::AtLeast(l) => format!(">= {l}"),
        }
    }
}

/// One target of the issue, evaluated on this run.
#[derive(Debug, Clone)]
pub struct Target {
    /// Row number in the table (1–9).
    pub row: usize,
    /// JSON key.
    pub key: &'static str,
    /// What is measured.
    pub figure: String,
    /// The limit.
    pub goal: Goal,
    /// The figure the target is judged on; `None` if its inputs were not measured.
    pub measured: Option<f64>,
    /// Its spread over repetitions, where there are several, as short text.
    pub spread: String,
    /// How it was computed (inputs, controls), or why it was not.
    pub detail: String,
    /// Set when the run shows that other load on the machine may have decided the figure
    /// (churn rows whose threads did not get 2 cores, controls that did not scale or scaled
    /// impossibly well): the verdict is printed, marked "(load)".
    pub load_caveat: bool,
}

impl Target {
    /// `Some(met)` once measured.
    pub fn met(&self) -> Option<bool> {
        self.measured.map(|x| self.goal.met(x))
    }
}
