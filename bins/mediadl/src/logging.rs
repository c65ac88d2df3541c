//! Tracing set-up shared by every command: the filter from `MEDIADL_LOG`,
//! lines in the format `--log-format` asks for, and the server's store
//! capture.

use mediadl_server::LogCapture;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Logs to standard error (`MEDIADL_LOG`, default `info`) as text or JSON
/// lines, and to the store when `capture` is given.
///
/// JSON lines carry the fields of the spans they were logged in: `span` is
/// the innermost one (e.g. `{"name":"request","request_id":…}` or
/// `{"name":"queue_item","queue_id":…}`), `spans` all of them, outermost first.
pub fn init(format: LogFormat, capture: Option<&LogCapture>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIADL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(lines.with_filter(filter));
    let _ = match capture {
        Some(capture) => registry.with(capture.layer()).try_init(),
        None => registry.try_init(),
    };
}
