//! `strata-server`: starts Strata the way `redis-server` starts.
//!
//! `strata-server [/path/to/strata.conf] [--directive value ...]`: the file (redis.conf
//! syntax) is read first, then each `--name value...` as if it were a further line.

use strata::config::Config;
use strata::tier::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator<mimalloc::MiMalloc> = CountingAllocator(mimalloc::MiMalloc);

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v3 enum; `purges_freed_pages_soon`
/// checks the index against the option's documented default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long a freed page stays with the process before it goes back to the system.
///
/// mimalloc's own delay is 1 s (v3). Under tiering, values move between RAM and disk all the
/// time; with that delay the pages they free were kept, and RSS ran 20-30% over the allocated
/// bytes (2M keys, `maxmemory 200mb`: 438 MB peak against 385 MB with no delay).
///
/// No delay at all was worse for a large dataset in RAM: every page of a size class is full of
/// values, so a reply's buffer of that class (GET of a 1 KiB value) got a fresh page, freed it
/// at once, and the page was given back and faulted in again: one `madvise` and one page
/// fault per GET, twice the server's CPU per GET (2M values of 1 KiB, GET -P 1: 33.7 us per
/// request, 212,526 `madvise` and 225,166 page faults per 200,000 GETs). A page freed and
/// taken again within this delay stays.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

#[allow(unsafe_code)]
fn purge_freed_pages_soon() {
    // SAFETY: sets one integer option of the allocator; callable at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

fn main() {
    purge_freed_pages_soon();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-v" | "--version")) {
        println!(
            "Strata server v={} (Redis {} compatible)",
            env!("CARGO_PKG_VERSION"),
            strata::REDIS_VERSION
        );
        return;
    }
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("Usage: strata-server [/path/to/strata.conf] [options]\n\nExamples:\n  strata-server (serves 127.0.0.1:6379, data in ./data)\n  strata-server --port 7777\n  strata-server /etc/strata/6379.conf --loglevel verbose");
        return;
    }
    let config_file = args
        .first()
        .filter(|first| !first.starts_with("--") && first.as_str() != "-")
        .map(std::path::PathBuf::from);
    let text = match config_text(&args) {
        Ok(text) => text,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    let config = Config::default();
    let warnings = match config.load_text(&text) {
        Ok(warnings) => warnings,
        Err(report) => {
            eprintln!("{report}");
            std::process::exit(1);
        }
    };
    let _log_guard = init_logging(&config);
    // A cold value that cannot be read unwinds to its command as an error reply (and is
    // logged by the tier): not a crash report.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !strata::tier::memory::is_tier_unwind(info.payload()) {
            report(info);
        }
    }));
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    // The accept loop, the cron and start-up; connections are served on threads of their
    // own (`server::threads`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Failed to start the runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(strata::server::run(config, config_file)) {
        tracing::error!("{err}");
        eprintln!("{err}");
        std::process::exit(1);
    }
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
}

/// The configuration text: the file, if the first argument is not an option, then each
/// `--name value...` as a line. Values are quoted so spaces and empty values survive.
fn config_text(args: &[String]) -> Result<String, String> {
    let mut text = String::new();
    let mut rest = args;
    if let Some(first) = args.first() {
        if !first.starts_with("--") {
            text = if first == "-" {
                let mut stdin = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut stdin)
                    .map_err(|err| format!("Reading config from stdin: {err}"))?;
                stdin
            } else {
                std::fs::read_to_string(first).map_err(|err| {
                    format!("Fatal error, can't open config file '{first}': {err}")
                })?
            };
            text.push('\n');
            rest = &args[1..];
        }
    }
    let mut line = String::new();
    for arg in rest {
        if let Some(name) = arg.strip_prefix("--") {
            if !line.is_empty() {
                text.push_str(&line);
                text.push('\n');
            }
            line = name.to_string();
        } else {
            if line.is_empty() {
                return Err(format!("Invalid option '{arg}': options start with --"));
            }
            line.push(' ');
            line.push_str(&quote(arg));
        }
    }
    if !line.is_empty() {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

fn quote(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Logs to `logfile` (appending) or stdout, at `loglevel`, in Redis's line format.
fn init_logging(config: &Config) -> Option<()> {
    let level = match config.word("loglevel") {
        "debug" => tracing::Level::TRACE,
        "verbose" => tracing::Level::DEBUG,
        "notice" => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let logfile = config.text("logfile");
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .event_format(RedisLogFormat);
    if logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
        {
            Ok(file) => builder.with_writer(std::sync::Mutex::new(file)).init(),
            Err(err) => {
                eprintln!("Can't open the log file: {err}");
                std::process::exit(1);
            }
        }
    }
    Some(())
}

/// `pid:M 21 Nov 2026 20:28:20.256 * message`, as redis-server logs (`.` debug, `-` verbose,
/// `*` notice, `#` warning), so tools that read Redis logs read Strata's.
struct RedisLogFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for RedisLogFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mark = match *event.metadata().level() {
            tracing::Level::TRACE => '.',
            tracing::Level::DEBUG => '-',
            tracing::Level::INFO => '*',
            _ => '#',
        };
        let now = chrono::Local::now().format("%d %b %Y %H:%M:%S%.3f");
        write!(writer, "{}:M {now} {mark} ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn purges_freed_pages_soon() {
        // SAFETY: reads and sets one integer option of the allocator.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "not mimalloc's purge delay (1000 ms by default in v3)"
        );
        super::purge_freed_pages_soon();
        // SAFETY: as above.
        let now = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, super::PURGE_DELAY_MS);
    }
}
