//! Where the daemon's lines go: syslog facility authpriv (decisions are security events, and
//! authpriv is where administrators and their SIEM look for sign-in records), and stderr when
//! run by hand or with `--log-stderr`.
//!
//! The daemon logs through [`tracing`]; [`init`] installs the one subscriber, whose two layers
//! write the same line: the event's message, then each field as ` key=value`, values
//! Debug-quoted as the callers' `{:?}` always did (`name="x"`, `uid=1003`):
//!
//! ```text
//! syslog (ident accountmapd, LOG_PID, LOG_AUTHPRIV):  refused a malformed request uid=1000
//! stderr:  accountmapd[812]: warning: refused a malformed request uid=1000
//! ```
//!
//! Levels map onto syslog priorities one step down, as `syslog-tracing` maps them, which keeps
//! today's five priorities and their stderr labels:
//!
//! | tracing | syslog | label | old function | what |
//! |---|---|---|---|---|
//! | `error!` | `LOG_ERR` | error | [`error`] | a backend down, a reload refused |
//! | `warn!` | `LOG_WARNING` | warning | [`warning`] | malformed requests, limits hit |
//! | `info!` | `LOG_NOTICE` | notice | [`notice`] | refusals, start, reload, stop |
//! | `debug!` | `LOG_INFO` | info | [`info`] | allowed sign-ins, NSS answers |
//! | `trace!` | `LOG_DEBUG` | debug | — | |
//!
//! So `debug!` is not noise here: allowed sign-ins are records. The subscriber has no level
//! filter; it keeps only this crate's own events (targets `accountmap…`): libraries that use
//! `tracing` (hyper under reqwest) stay silent, as they were.
//!
//! Each request runs in a span `request{peer_uid, peer_pid, kind}` (server/mod.rs). The two
//! layers do not print span fields: the lines administrators grep stay as they were, and the
//! decision and NSS lines already name the peer. The span is there for structured consumers
//! (a journald or JSON layer added later gets the fields on every event inside).
//!
//! New code logs with the `tracing` macros and fields, e.g.
//! `tracing::info!(name = ?name, uid, "refused")`; [`error`], [`warning`], [`notice`] and
//! [`info`] remain for the call sites that hand-format their `key=value` text.
//!
//! A line never contains a password or a token: callers log [`accountmap_wire::Request::log_form`]
//! or explicit fields, never a credential. Nothing is written before [`init`].

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

/// Chooses the destinations. Call once at start-up, before any thread logs; a second call
/// changes nothing.
pub fn init(to_syslog: bool, to_stderr: bool) {
    let syslog = to_syslog
        .then(|| {
            syslog_tracing::Syslog::new(
                c"accountmapd",
                syslog_tracing::Options::LOG_PID,
                syslog_tracing::Facility::AuthPriv,
            )
        })
        .flatten();
    let stderr = to_stderr.then_some(std::io::stderr);
    let _ = tracing::subscriber::set_global_default(subscriber(syslog, stderr));
}

/// The subscriber [`init`] installs, writing syslog's lines to `syslog` (one write per event,
/// no prefix, no newline: syslog adds ident, pid and priority) and the prefixed lines to
/// `stderr`.
fn subscriber<A, B>(syslog: Option<A>, stderr: Option<B>) -> impl Subscriber + Send + Sync
where
    A: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    B: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Span fields are never printed (see the module comment): formatting them into each
    // span's storage would only cost time on every request.
    let unprinted = || debug_fn(|_, _, _| Ok(()));
    Registry::default()
        .with(Targets::new().with_target("accountmap", Level::TRACE))
        .with(syslog.map(|w| {
            tracing_subscriber::fmt::layer()
                .fmt_fields(unprinted())
                .event_format(Line { stderr: false })
                .with_writer(w)
        }))
        .with(stderr.map(|w| {
            tracing_subscriber::fmt::layer()
                .fmt_fields(unprinted())
                .event_format(Line { stderr: true })
                .with_writer(w)
        }))
}

/// One event as one line. On stderr: `accountmapd[PID]: LABEL: ` before it and a newline
/// after (written whole, so lines of different threads never interleave).
struct Line {
    stderr: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = Text::default();
        event.record(&mut text);
        text.message.push_str(&text.fields);
        // One event is always one line: client text is escaped by `{:?}` (fields, the
        // callers' formatting), and this catches whatever is not. NUL would end the C string.
        let line = text.message.replace(['\n', '\r'], " ").replace('\0', "\\0");
        if self.stderr {
            let pid = std::process::id();
            writeln!(writer, "accountmapd[{pid}]: {}: {line}", label(event))
        } else {
            writer.write_str(&line)
        }
    }
}

/// The syslog priority's name, as the stderr lines have always said it.
fn label(event: &Event<'_>) -> &'static str {
    match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "notice",
        Level::DEBUG => "info",
        Level::TRACE => "debug",
    }
}

/// The message, and the other fields as ` key=value` in the order given.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    // Every kind of value comes here: strings Debug-quoted (`record_str`'s default), numbers
    // and booleans plain, `%value` fields as their Display.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = if field.name() == "message" {
            write!(self.message, "{value:?}")
        } else {
            write!(self.fields, " {}={value:?}", field.name())
        };
    }
}

// The string API the call sites use; each is a tracing event at the level of the table above.

pub fn error(message: &str) {
    tracing::error!("{message}");
}

pub fn warning(message: &str) {
    tracing::warn!("{message}");
}

pub fn notice(message: &str) {
    tracing::info!("{message}");
}

pub fn info(message: &str) {
    tracing::debug!("{message}");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Each write the layers make, as text: one per event.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let text = String::from_utf8_lossy(buf).into_owned();
            self.0.lock().unwrap().push(text);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `log` writes to syslog and to stderr (also used by the engine's tests).
    pub(crate) fn logged(log: impl FnOnce()) -> (Vec<String>, Vec<String>) {
        let (syslog, stderr) = (Capture::default(), Capture::default());
        let (s, e) = (syslog.clone(), stderr.clone());
        let subscriber = subscriber(Some(move || s.clone()), Some(move || e.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let take = |c: Capture| c.0.lock().unwrap().clone();
        (take(syslog), take(stderr))
    }

    #[test]
    fn the_string_api_writes_todays_lines_and_labels() {
        let (syslog, stderr) = logged(|| {
            error("reload refused: x");
            warning("accept failed: y");
            notice("configuration reloaded from /etc/accountmap/accountmap.toml");
            info("decision peer=uid:0/pid:1 name=\"a\"");
        });
        assert_eq!(
            syslog,
            [
                "reload refused: x",
                "accept failed: y",
                "configuration reloaded from /etc/accountmap/accountmap.toml",
                "decision peer=uid:0/pid:1 name=\"a\""
            ]
        );
        let pid = std::process::id();
        assert_eq!(
            stderr,
            [
                format!("accountmapd[{pid}]: error: reload refused: x\n"),
                format!("accountmapd[{pid}]: warning: accept failed: y\n"),
                format!("accountmapd[{pid}]: notice: configuration reloaded from /etc/accountmap/accountmap.toml\n"),
                format!("accountmapd[{pid}]: info: decision peer=uid:0/pid:1 name=\"a\"\n"),
            ]
        );
    }

    #[test]
    fn fields_follow_the_message_quoted_as_before() {
        let name = "J.Doe@x\"y\n";
        let (syslog, _) = logged(|| {
            tracing::info!(name, uid = 1003, cached = true, rule = %"accounts-file:1", "refused");
        });
        assert_eq!(
            syslog,
            [r#"refused name="J.Doe@x\"y\n" uid=1003 cached=true rule=accounts-file:1"#]
        );
    }

    #[test]
    fn an_event_is_one_line_whatever_it_holds() {
        let (syslog, stderr) = logged(|| notice("a\nb\rc\0d"));
        assert_eq!(syslog, ["a b c\\0d"]);
        assert!(stderr[0].ends_with(": notice: a b c\\0d\n"), "{stderr:?}");
    }

    #[test]
    fn span_fields_and_other_crates_events_are_not_printed() {
        let (syslog, _) = logged(|| {
            let span = tracing::info_span!("request", peer_uid = 1000, peer_pid = 7);
            let _inside = span.enter();
            notice("inside");
            tracing::error!(target: "hyper::proto", "a library's event");
        });
        assert_eq!(syslog, ["inside"]);
    }
}
