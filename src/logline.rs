//! The text log line when stderr is not a terminal: the layout of `tracing-subscriber`'s
//! default format, byte for byte —
//! `2026-12-04T01:36:27.054953Z  INFO request{request_id=… route=/x}: stsgate::audit: message k=v` —
//! written straight into the line buffer.
//!
//! The default formatter paints styles even with colour off, formats every value through
//! `fmt::Debug` and the time through a format description: its two lines per issuance were
//! a seventh of a request's instructions under load (docs/decisions.md). This writes the
//! same bytes with plain string writes. Messages and error texts are sanitised as the default
//! formatter does (terminal escape characters written as `\x1b`, …). A terminal keeps the
//! default formatter, with colours.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFormat;

/// The field format: `message` first as written, then `name=value` separated by spaces,
/// strings quoted as `{:?}` writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFields;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        crate::clock::write_rfc3339_micros(&mut w, now.as_secs() as i64, now.subsec_micros())?;
        let meta = event.metadata();
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        w.write_char('{')?;
                        w.write_str(fields)?;
                        w.write_char('}')?;
                    }
                }
                w.write_char(':')?;
            }
            if seen {
                w.write_char(' ')?;
            }
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

impl<'w> FormatFields<'w> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = LineVisitor {
            w: writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct LineVisitor<'w> {
    w: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl LineVisitor<'_> {
    /// The separating space and `name=` (`r#` stripped); `false` when nothing is to be
    /// written (an earlier write failed, or a `log.` field already shown as metadata).
    fn start(&mut self, name: &str) -> bool {
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if self.empty {
            self.empty = false;
        } else if let Err(e) = self.w.write_char(' ') {
            self.result = Err(e);
            return false;
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self.w.write_str(name).and_then(|()| self.w.write_char('='));
        }
        self.result.is_ok()
    }
}

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field.name()) {
            return;
        }
        self.result = if field.name() == "message" {
            sanitized(&mut self.w, value)
        } else {
            quoted(&mut self.w, value)
        };
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field.name()) {
            self.result = write!(self.w, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field.name()) {
            self.result = write!(self.w, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field.name()) {
            self.result = self.w.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.start(field.name()) {
            return;
        }
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.result = sanitized(&mut self.w, &text);
        if self.result.is_err() {
            return;
        }
        if let Some(source) = value.source() {
            let name = field.name();
            self.result = (|| {
                write!(self.w, " {name}.sources=[")?;
                let mut curr = Some(source);
                let mut first = true;
                while let Some(e) = curr {
                    if !first {
                        self.w.write_str(", ")?;
                    }
                    first = false;
                    text.clear();
                    let _ = write!(text, "{e}");
                    sanitized(&mut self.w, &text)?;
                    curr = e.source();
                }
                self.w.write_char(']')
            })();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.start(field.name()) {
            return;
        }
        self.result = if field.name() == "message" {
            let mut text = String::new();
            let _ = write!(text, "{value:?}");
            sanitized(&mut self.w, &text)
        } else {
            write!(self.w, "{value:?}")
        };
    }
}

/// `s` as `{:?}` writes it: quoted, and escaped only when it holds a character that needs it.
fn quoted(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        w.write_char('"')?;
        w.write_str(s)?;
        w.write_char('"')
    } else {
        write!(w, "{s:?}")
    }
}

/// `s` with the characters a terminal would take as control sequences written as escapes,
/// as the default formatter writes messages and errors.
fn sanitized(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    let risky = |c: char| {
        matches!(
            c,
            '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
        )
    };
    if !s.chars().any(risky) {
        return w.write_str(s);
    }
    for c in s.chars() {
        match c {
            '\x1b' => w.write_str("\\x1b")?,
            '\x07' => w.write_str("\\x07")?,
            '\x08' => w.write_str("\\x08")?,
            '\x0c' => w.write_str("\\x0c")?,
            '\x7f' => w.write_str("\\x7f")?,
            c if risky(c) => write!(w, "\\u{{{:x}}}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer \x1b[31mred")
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner \u{85}cause")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl std::error::Error for Inner {}

    /// Every kind of field, span and level the service logs.
    fn events() {
        let plain = "bench-user-11";
        let tricky = "o'brien \"q\" back\\slash tab\t nl\n ünï 🚀 \x1b[2J";
        let err = Outer(Inner);
        tracing::info!("no span, no fields");
        let outer = tracing::info_span!("request", request_id = %"d573a371", method = %"GET", route = %"/upload/sts/info");
        let _o = outer.enter();
        tracing::info!(status = 200u16, duration_ms = 55u64, "request served");
        tracing::warn!(error = %"db \"locked\"", "request refused");
        tracing::info!(target: "stsgate::audit", event = "credentials_issued", request_id = plain, sub = %plain, object_id = 1656i64, neg = -3i64, ok = true, no = false, ratio = 0.5f64, key = tricky, "issued upload credentials");
        tracing::error!(error = &err as &(dyn std::error::Error + 'static), "failed");
        tracing::debug!(r#type = "x", dbg = ?Some(vec![1, 2]), "message with \x1b escape and \u{9b} c1");
        tracing::trace!(message = tricky);
        let inner = tracing::debug_span!("inner", n = 1u64, s = "str \"q\"");
        let _i = inner.enter();
        inner.record("n", 2u64);
        tracing::info!(a = 1u64, "nested");
        let empty = tracing::info_span!("empty");
        let _e = empty.enter();
        tracing::info!("in a span without fields");
    }

    fn run(line: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buf.clone());
        if line {
            let s = builder
                .fmt_fields(LineFields)
                .event_format(LineFormat)
                .finish();
            tracing::subscriber::with_default(s, events);
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        out
    }

    /// Same bytes as the default formatter, timestamps aside (checked below).
    #[test]
    fn lines_match_the_default_format() {
        let ours = run(true);
        let theirs = run(false);
        let strip = |s: &str| {
            s.split_inclusive('\n')
                .map(|l| {
                    // A new event starts with its timestamp; a value holding "\n" continues
                    // the previous line and has none.
                    if l.len() > 27 && l.as_bytes()[4] == b'-' && l.as_bytes()[26] == b'Z' {
                        l[27..].to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<String>()
        };
        assert_eq!(ours.lines().count(), 9 + 1, "{ours}");
        assert_eq!(
            strip(&ours),
            strip(&theirs),
            "\nours:\n{ours}\ntheirs:\n{theirs}"
        );
        assert!(
            ours.contains("\\x1b[31mred"),
            "errors are sanitised: {ours}"
        );
        assert!(
            ours.contains(" error.sources=[inner \\u{85}cause]"),
            "{ours}"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let line = run(true);
        let first = line.lines().next().unwrap();
        let t = &first[..27];
        let parsed = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        let now = time::OffsetDateTime::now_utc();
        assert!((now - parsed).whole_seconds().abs() < 60, "{t}");
    }
}
