//! A report's content, once: a title, sections, and blocks (text, key figures, tables, SVG
//! charts). [`Document::html`] renders it as one self-contained HTML file (askama, inline style
//! and SVG, no script); [`Document::typst`] writes it as Typst markup for [`super::pdf`]. Both
//! come from the same blocks, so the PDF says what the HTML says.
//!
//! Every text goes into the markup as a Typst string literal (escaped), never as markup, so a
//! feature name or a reason cannot change the layout. Sizes are bounded by the callers (at most
//! [`MAX_ROWS`] rows a table).

use askama::Template;

/// Most rows one table carries; more are cut with a last row saying how many were left out.
pub const MAX_ROWS: usize = 500;

#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph.
    Text(String),
    /// A muted note (sources, definitions).
    Note(String),
    /// A verdict line: `bad` draws it red, else green.
    Verdict { text: String, bad: bool },
    /// Name–value pairs.
    Facts(Vec<(String, String)>),
    /// A table: a header and rows; `numeric[i]` right-aligns column i.
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        numeric: Vec<bool>,
    },
    /// An SVG chart (markup made by [`crate::charts`] or stored as a run's artifact).
    Chart(String),
}

#[derive(Debug, Clone)]
pub struct Section {
    pub heading: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub struct Document {
    /// Which report (model_card, drift, weekly, test): the metrics' label, a fixed set.
    pub kind: &'static str,
    pub title: String,
    /// One line under the title (what, when, by whom).
    pub subtitle: String,
    pub sections: Vec<Section>,
    /// When it was made, UTC.
    pub generated: String,
}

impl Section {
    pub fn new(heading: &str) -> Self {
        Section {
            heading: heading.to_owned(),
            blocks: Vec::new(),
        }
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Text(text.into()));
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Note(text.into()));
        self
    }

    pub fn facts(mut self, facts: Vec<(String, String)>) -> Self {
        if !facts.is_empty() {
            self.blocks.push(Block::Facts(facts));
        }
        self
    }

    /// A table; an empty one becomes the note `empty`.
    pub fn table(
        mut self,
        header: &[&str],
        numeric: &[bool],
        mut rows: Vec<Vec<String>>,
        empty: &str,
    ) -> Self {
        if rows.is_empty() {
            self.blocks.push(Block::Note(empty.to_owned()));
            return self;
        }
        if rows.len() > MAX_ROWS {
            let left = rows.len() - MAX_ROWS;
            rows.truncate(MAX_ROWS);
            let mut last = vec![String::new(); header.len()];
            if let Some(first) = last.first_mut() {
                *first = format!("… and {left} more");
            }
            rows.push(last);
        }
        self.blocks.push(Block::Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
            numeric: numeric.to_vec(),
        });
        self
    }

    /// A chart. Characters XML forbids (control characters from a label the data brought)
    /// become spaces, so that the SVG parses.
    pub fn chart(mut self, svg: String) -> Self {
        if !svg.is_empty() {
            let svg = svg
                .chars()
                .map(|c| {
                    if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            self.blocks.push(Block::Chart(svg));
        }
        self
    }

    pub fn verdict(mut self, text: impl Into<String>, bad: bool) -> Self {
        self.blocks.push(Block::Verdict {
            text: text.into(),
            bad,
        });
        self
    }
}

/// A block as the HTML template reads it.
struct BlockView<'a> {
    kind: &'static str,
    text: &'a str,
    bad: bool,
    facts: &'a [(String, String)],
    header: &'a [String],
    rows: Vec<Vec<(&'a str, bool)>>,
}

#[derive(Template)]
#[template(path = "reports/document.html")]
struct DocumentPage<'a> {
    title: &'a str,
    subtitle: &'a str,
    generated: &'a str,
    sections: Vec<(&'a str, Vec<BlockView<'a>>)>,
}

/// A Typst string literal: the text, escaped, in quotes.
pub fn typst_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Document {
    /// The self-contained HTML file.
    pub fn html(&self) -> Result<String, askama::Error> {
        let empty: &[(String, String)] = &[];
        let no_header: &[String] = &[];
        let sections = self
            .sections
            .iter()
            .map(|s| {
                let blocks = s
                    .blocks
                    .iter()
                    .map(|b| {
                        let mut v = BlockView {
                            kind: "text",
                            text: "",
                            bad: false,
                            facts: empty,
                            header: no_header,
                            rows: Vec::new(),
                        };
                        match b {
                            Block::Text(t) => v.text = t,
                            Block::Note(t) => {
                                v.kind = "note";
                                v.text = t;
                            }
                            Block::Verdict { text, bad } => {
                                v.kind = "verdict";
                                v.text = text;
                                v.bad = *bad;
                            }
                            Block::Facts(f) => {
                                v.kind = "facts";
                                v.facts = f;
                            }
                            Block::Table {
                                header,
                                rows,
                                numeric,
                            } => {
                                v.kind = "table";
                                v.header = header;
                                v.rows = rows
                                    .iter()
                                    .map(|r| {
                                        r.iter()
                                            .enumerate()
                                            .map(|(i, c)| {
                                                (
                                                    c.as_str(),
                                                    numeric.get(i).copied().unwrap_or(false),
                                                )
                                            })
                                            .collect()
                                    })
                                    .collect();
                            }
                            Block::Chart(svg) => {
                                v.kind = "chart";
                                v.text = svg;
                            }
                        }
                        v
                    })
                    .collect();
                (s.heading.as_str(), blocks)
            })
            .collect();
        DocumentPage {
            title: &self.title,
            subtitle: &self.subtitle,
            generated: &self.generated,
            sections,
        }
        .render()
    }

    /// The Typst markup of the same content: A4, a footer with the title and page numbers,
    /// tables whose header repeats on each page they run onto, charts scaled to the text width.
    pub fn typst(&self) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "#set document(title: {})\n",
            typst_str(&self.title)
        ));
        t.push_str(&format!(
            "#set page(paper: \"a4\", margin: (x: 1.7cm, top: 1.8cm, bottom: 2cm), footer: context [\
             #set text(size: 8pt, fill: luma(110)); #{} #h(1fr) #counter(page).display(\"1 / 1\", both: true)])\n",
            typst_str(&format!("Steward · {}", self.title))
        ));
        t.push_str("#set text(font: \"Libertinus Serif\", size: 10pt, lang: \"en\")\n");
        t.push_str("#set par(justify: false, leading: 0.55em)\n");
        t.push_str("#show heading.where(level: 1): set text(size: 18pt)\n");
        t.push_str("#show heading.where(level: 2): it => block(above: 1.2em, below: 0.6em, sticky: true, text(size: 13pt, it.body))\n");
        t.push_str(
            "#set table(stroke: (x, y) => (bottom: if y == 0 { 0.6pt } else { 0.3pt + luma(210) }), \
             inset: (x: 4pt, y: 3pt))\n",
        );
        t.push_str(&format!("= #{}\n", typst_str(&self.title)));
        t.push_str(&format!(
            "#text(fill: luma(90))[#{}]\n\n",
            typst_str(&format!("{} · generated {}", self.subtitle, self.generated))
        ));
        for s in &self.sections {
            t.push_str(&format!("== #{}\n", typst_str(&s.heading)));
            for b in &s.blocks {
                match b {
                    Block::Text(text) => t.push_str(&format!("#{}\n\n", typst_str(text))),
                    Block::Note(text) => t.push_str(&format!(
                        "#text(size: 8.5pt, fill: luma(100))[#{}]\n\n",
                        typst_str(text)
                    )),
                    Block::Verdict { text, bad } => t.push_str(&format!(
                        "#block(fill: rgb({}), stroke: 0.6pt + rgb({}), inset: 6pt, radius: 3pt, width: 100%)[#strong({})]\n\n",
                        if *bad { "\"#fef2f2\"" } else { "\"#ecfdf5\"" },
                        if *bad { "\"#ef4444\"" } else { "\"#10b981\"" },
                        typst_str(text)
                    )),
                    Block::Facts(facts) => {
                        t.push_str("#table(columns: (auto, 1fr), fill: (x, y) => if x == 0 { luma(245) }, ");
                        for (k, v) in facts {
                            t.push_str(&format!("strong({}), {}, ", typst_str(k), typst_str(v)));
                        }
                        t.push_str(")\n\n");
                    }
                    Block::Table {
                        header,
                        rows,
                        numeric,
                    } => {
                        let size = if header.len() > 7 { "7.5pt" } else { "9pt" };
                        let align: Vec<&str> = (0..header.len())
                            .map(|i| {
                                if numeric.get(i).copied().unwrap_or(false) {
                                    "right"
                                } else {
                                    "left"
                                }
                            })
                            .collect();
                        t.push_str(&format!(
                            "#block(width: 100%)[#set text(size: {size})\n#table(columns: {}, align: ({},), fill: (x, y) => if y == 0 {{ luma(240) }}, table.header(",
                            header.len(),
                            align.join(", ")
                        ));
                        for h in header {
                            t.push_str(&format!("strong({}), ", typst_str(h)));
                        }
                        t.push_str("), ");
                        for r in rows {
                            for i in 0..header.len() {
                                let cell = r.get(i).map(String::as_str).unwrap_or("");
                                t.push_str(&format!("{}, ", typst_str(cell)));
                            }
                        }
                        t.push_str(")]\n\n");
                    }
                    Block::Chart(svg) => t.push_str(&format!(
                        "#align(center, image(bytes({}), format: \"svg\", width: {}%))\n\n",
                        typst_str(svg),
                        chart_width(svg)
                    )),
                }
            }
        }
        t
    }
}

/// A chart's width on the page, in percent of the text width: the 360-unit-wide charts at
/// 62%, wider ones (histograms) in proportion, up to the whole width.
fn chart_width(svg: &str) -> u32 {
    let width = svg
        .split_once("viewBox=\"")
        .and_then(|(_, rest)| rest.split_whitespace().nth(2))
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|w| w.is_finite() && *w > 0.0)
        .unwrap_or(360.0);
    (width / 360.0 * 62.0).clamp(30.0, 100.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_keep_their_scale() {
        assert_eq!(chart_width(r#"<svg viewBox="0 0 360 300">"#), 62);
        assert_eq!(chart_width(r#"<svg viewBox="0 0 760 300">"#), 100);
        assert_eq!(chart_width("<svg>"), 62);
    }

    #[test]
    fn text_goes_in_as_escaped_strings() {
        assert_eq!(typst_str(r#"a "b" \ #c = d"#), r#""a \"b\" \\ #c = d""#);
        assert_eq!(typst_str("x\ny\u{7}"), "\"x\\ny \"");
        let doc = Document {
            kind: "test",
            title: "T #set page(width: 1cm)".into(),
            subtitle: "s".into(),
            generated: "now".into(),
            sections: vec![Section::new("= h").table(
                &["a", "b"],
                &[false, true],
                vec![vec!["]".into(), "1".into()]],
                "none",
            )],
        };
        let markup = doc.typst();
        assert!(
            markup.contains(r#"= #"T #set page(width: 1cm)""#),
            "{markup}"
        );
        assert!(
            markup.contains(r#"table.header(strong("a"), strong("b"), ), "]", "1", "#),
            "{markup}"
        );
    }

    /// Every kind of block, with text that would be markup if it were not escaped, lays out and
    /// exports (Typst 0.15).
    #[test]
    fn every_block_compiles_to_pdf() {
        let nasty = "*bold* _x_ #set page(width: 1cm) $ \\ \" ] [ // <b>&";
        let doc = Document {
            kind: "test",
            title: format!("T {nasty}"),
            subtitle: nasty.into(),
            generated: "now".into(),
            sections: vec![
                Section::new(nasty)
                    .text(nasty)
                    .note(nasty)
                    .verdict(nasty, true)
                    .verdict("fine", false)
                    .facts(vec![(nasty.into(), nasty.into())])
                    .table(
                        &["a", "b", "c", "d", "e", "f", "g", "h"],
                        &[false, true, false, false, false, false, false, true],
                        (0..120)
                            .map(|i| (0..8).map(|j| format!("{nasty}{i}.{j}")).collect())
                            .collect(),
                        "none",
                    )
                    .table(&["x"], &[false], Vec::new(), "nothing here")
                    .chart(crate::charts::bars(
                        "Bars",
                        &[("a".into(), 1.0), ("b".into(), 0.0)],
                    )),
            ],
        };
        let pdf = super::super::pdf::render(doc.typst()).expect("the markup compiles");
        assert!(pdf.starts_with(b"%PDF-"));
        let html = doc.html().expect("html");
        assert!(!html.contains("<b>") && html.contains("<svg"));
    }
}
