//! PDF from a report's Typst markup ([`super::document::Document::typst`]), with Typst used as a
//! library: it lays the text, the tables (their headers repeated on every page they run onto)
//! and the SVG charts out on A4 pages, and typst-pdf writes the file with the fonts it used
//! embedded (subsets of typst-assets' Libertinus Serif and DejaVu Sans Mono, compiled into the
//! binary). The world it compiles in has one file, the markup; it reads nothing from the disk
//! or the network. CPU-bound: call from the blocking pool.

use std::sync::OnceLock;

use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use crate::error::AppError;

struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        Fonts {
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

struct ReportWorld {
    main: Source,
    today: chrono::NaiveDate,
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn file(&self, _id: FileId) -> FileResult<Bytes> {
        Err(FileError::AccessDenied)
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        use chrono::Datelike;
        Datetime::from_ymd(
            self.today.year(),
            u8::try_from(self.today.month()).ok()?,
            u8::try_from(self.today.day()).ok()?,
        )
    }
}

/// Compiles the markup and writes the PDF. Errors are Typst's first diagnostic (a bug in the
/// markup writer: every text enters as an escaped string).
pub fn render(markup: String) -> Result<Vec<u8>, AppError> {
    let fail = |what: &str, message: &str| {
        AppError::Internal(anyhow::anyhow!("PDF report: {what}: {message}"))
    };
    let path = VirtualPath::new("/report.typ").map_err(|e| fail("path", &format!("{e:?}")))?;
    let id = RootedPath::new(VirtualRoot::Project, path).intern();
    let world = ReportWorld {
        main: Source::new(id, markup),
        today: chrono::Utc::now().date_naive(),
    };
    let compiled = typst::compile::<typst_layout::PagedDocument>(&world).output;
    let document = compiled.map_err(|diags| {
        fail(
            "layout",
            diags
                .first()
                .map(|d| d.message.as_str())
                .unwrap_or("failed"),
        )
    })?;
    let pdf = typst_pdf::pdf(&document, &typst_pdf::PdfOptions::default()).map_err(|diags| {
        fail(
            "export",
            diags
                .first()
                .map(|d| d.message.as_str())
                .unwrap_or("failed"),
        )
    });
    // Typst memoises across compilations; reports are rare, so keep nothing for long.
    comemo::evict(2);
    pdf
}
