//! Tabular writers: rows of [`Cell`]s written as CSV, NDJSON or XLSX to any [`Write`], one row
//! at a time. None of them keeps rows: CSV and NDJSON write through a buffer, XLSX uses
//! `rust_xlsxwriter`'s constant-memory mode (each finished row goes to a temporary file; the
//! workbook is zipped into the output at [`TableWriter::finish`]). So memory stays flat however
//! many rows are written.

use std::io::Write;

use anyhow::{Context, bail};
use rust_xlsxwriter::{Format as XlsxFormat, Workbook};

use crate::Format;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Cell::Empty, Cell::Int)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Cell::Empty, Cell::Float)
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Cell::Empty, Cell::Text)
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_owned())
    }
}

/// Rows an XLSX sheet holds (Excel's limit), the header included; more go on a new sheet.
const XLSX_MAX_ROWS: u32 = 1_048_576;

enum Inner<W: Write + Send> {
    Csv(csv::Writer<W>),
    Ndjson(std::io::BufWriter<W>),
    Xlsx {
        workbook: Box<Workbook>,
        sheet: usize,
        row: u32,
        header: XlsxFormat,
        out: W,
    },
}

/// Writes rows with fixed columns in one format.
pub struct TableWriter<W: Write + Send> {
    columns: Vec<String>,
    inner: Inner<W>,
    rows: u64,
}

impl<W: Write + Send> TableWriter<W> {
    /// A writer of `columns` in `format` (`csv`, `ndjson` or `xlsx`) to `out`; CSV and XLSX
    /// start with a header row.
    pub fn new(format: Format, columns: &[&str], out: W) -> anyhow::Result<Self> {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let inner = match format {
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .buffer_capacity(64 * 1024)
                    .from_writer(out);
                writer
                    .write_record(&columns)
                    .context("writing CSV header")?;
                Inner::Csv(writer)
            }
            Format::Ndjson => Inner::Ndjson(std::io::BufWriter::with_capacity(64 * 1024, out)),
            Format::Xlsx => {
                let mut workbook = Box::new(Workbook::new());
                workbook.add_worksheet_with_constant_memory()?;
                let mut inner = Inner::Xlsx {
                    workbook,
                    sheet: 0,
                    row: 0,
                    header: XlsxFormat::new().set_bold(),
                    out,
                };
                write_xlsx_header(&mut inner, &columns)?;
                inner
            }
            Format::Json => bail!("JSON is written whole, not as a table: use csv, ndjson or xlsx"),
        };
        Ok(Self {
            columns,
            inner,
            rows: 0,
        })
    }

    /// Rows written so far (the header not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes one row; `cells` must match the columns.
    pub fn write_row(&mut self, cells: &[Cell]) -> anyhow::Result<()> {
        if cells.len() != self.columns.len() {
            bail!(
                "a row has {} cells for {} columns",
                cells.len(),
                self.columns.len()
            );
        }
        match &mut self.inner {
            Inner::Csv(writer) => {
                for cell in cells {
                    match cell {
                        Cell::Empty => writer.write_field(b""),
                        Cell::Int(v) => writer.write_field(v.to_string()),
                        Cell::Float(v) => writer.write_field(v.to_string()),
                        Cell::Bool(v) => writer.write_field(if *v { "true" } else { "false" }),
                        Cell::Text(v) => writer.write_field(v),
                    }
                    .context("writing CSV")?;
                }
                writer.write_record(None::<&[u8]>).context("writing CSV")?;
            }
            Inner::Ndjson(out) => {
                let mut object = serde_json::Map::with_capacity(cells.len());
                for (name, cell) in self.columns.iter().zip(cells) {
                    let value = match cell {
                        Cell::Empty => serde_json::Value::Null,
                        Cell::Int(v) => (*v).into(),
                        Cell::Float(v) => (*v).into(),
                        Cell::Bool(v) => (*v).into(),
                        Cell::Text(v) => v.clone().into(),
                    };
                    object.insert(name.clone(), value);
                }
                serde_json::to_writer(&mut *out, &object).context("writing NDJSON")?;
                out.write_all(b"\n").context("writing NDJSON")?;
            }
            Inner::Xlsx { .. } => {
                next_xlsx_row(&mut self.inner, &self.columns)?;
                let Inner::Xlsx {
                    workbook,
                    sheet,
                    row,
                    ..
                } = &mut self.inner
                else {
                    unreachable!("matched above")
                };
                let worksheet = workbook.worksheet_from_index(*sheet)?;
                for (col, cell) in cells.iter().enumerate() {
                    let col = col as u16;
                    match cell {
                        Cell::Empty => &mut *worksheet,
                        Cell::Int(v) => worksheet.write_number(*row, col, *v as f64)?,
                        Cell::Float(v) => worksheet.write_number(*row, col, *v)?,
                        Cell::Bool(v) => worksheet.write_boolean(*row, col, *v)?,
                        Cell::Text(v) => worksheet.write_string(*row, col, v)?,
                    };
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes what CSV and NDJSON buffered (call between batches to hand bytes on).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::Csv(writer) => writer.flush().context("flushing CSV")?,
            Inner::Ndjson(out) => out.flush().context("flushing NDJSON")?,
            Inner::Xlsx { .. } => {}
        }
        Ok(())
    }

    /// Finishes the file (for XLSX: zips the workbook into the output) and returns the output.
    pub fn finish(self) -> anyhow::Result<W> {
        match self.inner {
            Inner::Csv(writer) => writer
                .into_inner()
                .map_err(|e| anyhow::anyhow!("flushing CSV: {}", e.error())),
            Inner::Ndjson(out) => out
                .into_inner()
                .map_err(|e| anyhow::anyhow!("flushing NDJSON: {}", e.error())),
            Inner::Xlsx {
                mut workbook,
                mut out,
                ..
            } => {
                workbook
                    .save_to_writer(&mut out)
                    .context("writing the XLSX file")?;
                out.flush().context("flushing the XLSX file")?;
                Ok(out)
            }
        }
    }
}

/// Moves to the next XLSX row, starting a new sheet (with the header) when one is full.
fn next_xlsx_row<W: Write + Send>(inner: &mut Inner<W>, columns: &[String]) -> anyhow::Result<()> {
    if let Inner::Xlsx {
        workbook,
        sheet,
        row,
        ..
    } = inner
    {
        if *row + 1 >= XLSX_MAX_ROWS {
            workbook.add_worksheet_with_constant_memory()?;
            *sheet += 1;
            *row = 0;
            return write_xlsx_header(inner, columns).and_then(|()| next_xlsx_row(inner, columns));
        }
        *row += 1;
    }
    Ok(())
}

fn write_xlsx_header<W: Write + Send>(
    inner: &mut Inner<W>,
    columns: &[String],
) -> anyhow::Result<()> {
    if let Inner::Xlsx {
        workbook,
        sheet,
        header,
        ..
    } = inner
    {
        let worksheet = workbook.worksheet_from_index(*sheet)?;
        for (col, name) in columns.iter().enumerate() {
            worksheet.write_string_with_format(0, col as u16, name, header)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: Format) -> Vec<u8> {
        let mut writer =
            TableWriter::new(format, &["id", "name", "score", "ok"], Vec::new()).expect("writer");
        writer
            .write_row(&[
                Cell::Int(1),
                "Fuga, \"grande\"".into(),
                Cell::Float(1.5),
                Cell::Bool(true),
            ])
            .expect("row");
        writer
            .write_row(&[Cell::Int(2), Cell::Empty, Cell::Empty, Cell::Bool(false)])
            .expect("row");
        assert_eq!(writer.rows(), 2);
        writer.finish().expect("finish")
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_quoting() {
        let text = String::from_utf8(sample(Format::Csv)).expect("utf-8");
        assert_eq!(
            text,
            "id,name,score,ok\n1,\"Fuga, \"\"grande\"\"\",1.5,true\n2,,,false\n"
        );
    }

    #[test]
    fn ndjson_has_one_object_per_line_with_nulls_for_empty_cells() {
        let text = String::from_utf8(sample(Format::Ndjson)).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            serde_json::json!({"id": 1, "name": "Fuga, \"grande\"", "score": 1.5, "ok": true})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"id": 2, "name": null, "score": null, "ok": false})
        );
    }

    #[test]
    fn xlsx_is_a_zip_whose_sheet_holds_the_rows() {
        let bytes = sample(Format::Xlsx);
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        let sheet = crate::test_support::xlsx_sheet_xml(&bytes, 1);
        assert!(sheet.contains("Fuga, &quot;grande&quot;") || sheet.contains("Fuga, \"grande\""));
        assert!(sheet.contains("<v>1.5</v>"));
        assert!(sheet.contains("r=\"A3\""), "three rows: {sheet}");
    }

    #[test]
    fn a_row_with_the_wrong_width_is_refused() {
        let mut writer = TableWriter::new(Format::Csv, &["a", "b"], Vec::new()).expect("writer");
        assert!(writer.write_row(&[Cell::Int(1)]).is_err());
    }

    #[test]
    fn json_is_not_a_table_format() {
        assert!(TableWriter::new(Format::Json, &["a"], Vec::new()).is_err());
    }
}
