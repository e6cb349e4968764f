//! The results of a run ([`Report`]: one row per peer, one column per measured quantity) and
//! their printing as one text table.

/// One measured value, or why there is none.
#[derive(Debug, Clone)]
pub enum Value {
    /// A number, printed with the column's decimals.
    Num(f64),
    /// A short text (`n/a`, `-`), printed as is.
    #[cfg_attr(feature = "pcpu", allow(dead_code))] // only missing peers use it
    Text(String),
    /// Repeated measurements of one figure, in run order (JSON only).
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
    /// `(column key, value)` pairs.
    pub values: Vec<(String, Value)>,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Columns, in the order the scenarios ran.
    pub columns: Vec<Column>,
    /// Rows, in the order the peers were first seen.
    pub rows: Vec<Row>,
    /// Lines printed under the table (scenario parameters, caveats).
    pub notes: Vec<String>,
    /// The issue-12 targets, evaluated once the scenarios have run.
    pub targets: Vec<crate::targets::Target>,
}

impl Report {
    /// Declares the columns of a scenario that is about to run.
    pub fn add_columns(&mut self, cols: &[Column]) {
        self.columns.extend_from_slice(cols);
    }

    /// Records `value` for `peer` in column `key`.
    pub fn set(&mut self, peer: &'static str, key: impl Into<String>, value: Value) {
        let key = key.into();
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
        match row.values.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => row.values.push((key, value)),
        }
    }

    /// Records a number.
    pub fn num(&mut self, peer: &'static str, key: impl Into<String>, v: f64) {
        self.set(peer, key, Value::Num(v));
    }

    /// The value of `peer` in column `key`, if measured.
    pub fn get(&self, peer: &str, key: &str) -> Option<&Value> {
        let row = self.rows.iter().find(|r| r.peer == peer)?;
        row.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Adds a note under the table.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// The table as text: header, rows, legend and notes.
    pub fn render(&self) -> String {
        let mut grid: Vec<Vec<String>> = Vec::new();
        let mut header = vec!["peer".to_string()];
        header.extend(self.columns.iter().map(|c| c.header.to_string()));
        grid.push(header);
        for row in &self.rows {
            let mut line = vec![row.peer.to_string()];
            for c in &self.columns {
                line.push(match self.get(row.peer, c.key) {
                    Some(Value::Num(v)) => format_num(*v, c.decimals),
                    // "n/a (why)": the reason is in the notes; keep the column narrow.
                    Some(Value::Text(t)) => t.split(" (").next().unwrap_or(t).to_string(),
                    Some(Value::List(_)) | None => "-".to_string(),
                });
            }
            grid.push(line);
        }
        let ncol = grid[0].len();
        let widths: Vec<usize> = (0..ncol)
            .map(|i| grid.iter().map(|l| l[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (n, line) in grid.iter().enumerate() {
            for (i, cell) in line.iter().enumerate() {
                if i == 0 {
                    out.push_str(&format!("{cell:<w$}", w = widths[0]));
                } else {
                    out.push_str(&format!("  {cell:>w$}", w = widths[i]));
                }
            }
            out.push('\n');
            if n == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (ncol - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out.push('\n');
        for c in &self.columns {
            out.push_str(&format!(
                "  {:<12} [{}] {}\n",
                c.header, c.scenario, c.legend
            ));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("  * {n}\n"));
            }
        }
        out
    }
}

/// A number with thousands separators in its integer part.
fn format_num(v: f64, decimals: usize) -> String {
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
}
