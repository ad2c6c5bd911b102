//! Text in aligned columns, each as wide as its widest cell, so a long IPv6
//! address or a scheduler's options never push a column out of line. One
//! listing may hold several tables whose rows interleave (services and
//! their servers), and free lines between them that no column sees.

use std::fmt::Write;

/// How a column's cells sit in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers, as ipvsadm's --stats.
    Right,
}

/// A table of the listing, by [`Grid::table`].
#[derive(Debug, Clone, Copy)]
pub struct TableId(usize);

#[derive(Debug)]
enum Line {
    Row(TableId, Vec<String>),
    Free(String),
}

/// The lines of a listing, laid out when rendered.
#[derive(Debug, Default)]
pub struct Grid {
    aligns: Vec<Vec<Align>>,
    lines: Vec<Line>,
}

/// Between two columns.
const GAP: &str = "  ";

impl Grid {
    /// A new table whose columns sit as `aligns` says (a column past its
    /// end is left-aligned).
    pub fn table(&mut self, aligns: &[Align]) -> TableId {
        self.aligns.push(aligns.to_vec());
        TableId(self.aligns.len() - 1)
    }

    /// A row of `table`.
    pub fn row(&mut self, table: TableId, cells: Vec<String>) {
        self.lines.push(Line::Row(table, cells));
    }

    /// A line of its own, outside every table.
    pub fn free(&mut self, line: impl Into<String>) {
        self.lines.push(Line::Free(line.into()));
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<Vec<usize>> = vec![Vec::new(); self.aligns.len()];
        for line in &self.lines {
            if let Line::Row(table, cells) = line {
                let widths = &mut widths[table.0];
                widths.resize(widths.len().max(cells.len()), 0);
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Free(text) => out.push_str(text),
                Line::Row(table, cells) => {
                    let aligns = &self.aligns[table.0];
                    for (column, cell) in cells.iter().enumerate() {
                        let width = widths[table.0][column];
                        let _ = match aligns.get(column).copied().unwrap_or(Align::Left) {
                            Align::Left => write!(out, "{cell:<width$}{GAP}"),
                            Align::Right => write!(out, "{cell:>width$}{GAP}"),
                        };
                    }
                    out.truncate(out.trim_end().len());
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut grid = Grid::default();
        let services = grid.table(&[Align::Left, Align::Left]);
        let numbers = grid.table(&[Align::Left, Align::Right]);
        grid.row(services, vec!["Ident".into(), "Listen".into()]);
        grid.row(numbers, vec!["  -> Server".into(), "Requests".into()]);
        grid.row(services, vec!["web".into(), "[2001:db8::1]:8080".into()]);
        grid.free("  a line of its own, as long as it likes");
        grid.row(numbers, vec!["  -> [2001:db8::2]:8080".into(), "7".into()]);
        assert_eq!(
            grid.render(),
            "Ident  Listen\n\
             \x20 -> Server              Requests\n\
             web    [2001:db8::1]:8080\n\
             \x20 a line of its own, as long as it likes\n\
             \x20 -> [2001:db8::2]:8080         7\n"
        );
    }
}
