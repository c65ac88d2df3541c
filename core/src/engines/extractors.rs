//! Which URLs yt-dlp and gallery-dl accept, read from the installed
//! programs themselves, so recognising a pasted URL
//! ([`Registry::recognise`](crate::Registry)) needs no network and no
//! program run per URL.
//!
//! How: the program's own Python (the interpreter of its `#!` line, else
//! `python3`; the program's path is put first on `sys.path`, so a zipapp
//! build imports from itself) imports `yt_dlp` / `gallery_dl` and prints
//! every extractor's name and URL regexes (`_VALID_URL` / `pattern`) as
//! JSON, once per process and program (the cache is keyed by the program's
//! path and its file's size and modification time, so an upgrade or a
//! changed `path` setting is read again; the version is kept with it).
//! The regexes are matched in Rust with `fancy-regex` (Python's
//! look-arounds and back-references), anchored at the start as Python's
//! `re.match` is. An extractor whose regex does not compile is asked
//! about with the program's own `suitable()` call; the catch-all
//! extractors (yt-dlp's `generic`, gallery-dl's `directlink`, `generic`,
//! `recursive`, `ytdl`, `oauth`, `noop`) are left out: a URL only they
//! accept is a plain file (`direct`). A missing program, a build without
//! Python modules, a timeout or unreadable output means the program claims
//! nothing; the reason is logged once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use fancy_regex::Regex;
use serde::Deserialize;
use url::Url;

use super::runner::Invocation;
use super::{ProgramSettings, locate, run_to_end};
use crate::model::{DownloaderInfo, Settings};
use crate::platforms::platform_enabled;
use crate::recognise::{MatchedBy, Recognition};

/// How long reading an extractor list may take (importing every extractor).
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `suitable()` question may take.
const SUITABLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The two programs whose extractors are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// yt-dlp (`yt_dlp` module; extractors' `_VALID_URL`).
    YtDlp,
    /// gallery-dl (`gallery_dl` module; extractors' `pattern`).
    GalleryDl,
}

/// Prints `{"version": …, "extractors": [{"name": …, "patterns": […]}]}`.
/// argv: the program's path.
const YT_DLP_LIST: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.version import __version__
out = []
for ie in gen_extractor_classes():
    if ie.ie_key().lower() in ("generic",):
        continue
    name = ie.IE_NAME if isinstance(ie.IE_NAME, str) else ie.ie_key()
    valid = getattr(ie, "_VALID_URL", None)
    if not valid:
        continue
    patterns = [valid] if isinstance(valid, str) else [p for p in valid if isinstance(p, str)]
    out.append({"name": name, "patterns": patterns})
print(json.dumps({"version": __version__, "extractors": out}))
"#;

/// Prints the name of the first listed extractor whose `suitable()` accepts
/// the URL, or nothing. argv: the program's path, the URL, the names as JSON.
const YT_DLP_SUITABLE: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from yt_dlp.extractor import gen_extractor_classes
wanted = set(json.loads(sys.argv[3]))
for ie in gen_extractor_classes():
    name = ie.IE_NAME if isinstance(ie.IE_NAME, str) else ie.ie_key()
    if name in wanted and ie.suitable(sys.argv[2]):
        print(name)
        break
"#;

/// As [`YT_DLP_LIST`], for gallery-dl (`category:subcategory` names).
const GALLERY_DL_LIST: &str = r#"
import json, re, sys
sys.path.insert(0, sys.argv[1])
from gallery_dl import extractor
from gallery_dl.version import __version__
skip = {"directlink", "generic", "recursive", "ytdl", "oauth", "noop"}
out = []
for cls in extractor.extractors():
    if cls.category in skip:
        continue
    category = cls.category or getattr(cls, "basecategory", "")
    name = category + (":" + cls.subcategory if cls.subcategory else "")
    pattern = cls.pattern if isinstance(cls.pattern, str) else cls.pattern.pattern
    flags = 0 if isinstance(cls.pattern, str) else cls.pattern.flags
    if flags & re.IGNORECASE and not pattern.startswith("(?i)"):
        pattern = "(?i)" + pattern
    out.append({"name": name, "patterns": [pattern]})
print(json.dumps({"version": __version__, "extractors": out}))
"#;

/// As [`YT_DLP_SUITABLE`], for gallery-dl (its `find` matches `pattern`).
const GALLERY_DL_SUITABLE: &str = r#"
import json, re, sys
sys.path.insert(0, sys.argv[1])
from gallery_dl import extractor
wanted = set(json.loads(sys.argv[3]))
for cls in extractor.extractors():
    category = cls.category or getattr(cls, "basecategory", "")
    name = category + (":" + cls.subcategory if cls.subcategory else "")
    pattern = re.compile(cls.pattern) if isinstance(cls.pattern, str) else cls.pattern
    if name in wanted and pattern.match(sys.argv[2]):
        print(name)
        break
"#;

impl Program {
    /// The general platform whose downloader this program is (CONTRACT:
    /// `video` for yt-dlp, `gallery` for gallery-dl): only it claims URLs
    /// by extractor patterns; the named platforms' program downloaders
    /// leave recognition to their native siblings' rules.
    pub fn general_platform(self) -> &'static str {
        match self {
            Self::YtDlp => "video",
            Self::GalleryDl => "gallery",
        }
    }

    /// The program's usual name (`yt-dlp`, `gallery-dl`).
    pub fn name(self) -> &'static str {
        match self {
            Self::YtDlp => "yt-dlp",
            Self::GalleryDl => "gallery-dl",
        }
    }

    fn list_script(self) -> &'static str {
        match self {
            Self::YtDlp => YT_DLP_LIST,
            Self::GalleryDl => GALLERY_DL_LIST,
        }
    }

    fn suitable_script(self) -> &'static str {
        match self {
            Self::YtDlp => YT_DLP_SUITABLE,
            Self::GalleryDl => GALLERY_DL_SUITABLE,
        }
    }
}

/// What the list script prints.
#[derive(Debug, Deserialize)]
struct Listing {
    version: String,
    extractors: Vec<ListedExtractor>,
}

#[derive(Debug, Deserialize)]
struct ListedExtractor {
    name: String,
    patterns: Vec<String>,
}

#[derive(Debug)]
struct Extractor {
    name: String,
    patterns: Vec<Pattern>,
}

/// One compiled extractor pattern.
#[derive(Debug)]
enum Pattern {
    /// Plain regex syntax: this index in [`Catalog::plain`], which matches
    /// a URL against all such patterns in one pass.
    Plain(usize),
    /// Look-arounds or back-references: `fancy-regex`, asked one by one.
    Fancy(Regex),
}

/// The compiled patterns of a catalog.
#[derive(Debug)]
struct Compiled {
    extractors: Vec<Extractor>,
    plain: regex::RegexSet,
    uncompiled: Vec<String>,
}

/// One program's extractors, read once.
#[derive(Debug)]
pub struct Catalog {
    program: Program,
    program_path: PathBuf,
    interpreter: PathBuf,
    version: String,
    extractors: Vec<Extractor>,
    /// Every [`Pattern::Plain`] pattern, in one set: a URL is tried
    /// against ~1,700 patterns in microseconds, not milliseconds.
    plain: regex::RegexSet,
    /// Extractors with a regex Rust cannot compile: asked with `suitable()`.
    uncompiled: Vec<String>,
}

impl Catalog {
    /// The program's version, as its Python module says.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How many extractors are matched in Rust.
    pub fn compiled(&self) -> usize {
        self.extractors.len()
    }

    /// The extractors whose regexes did not compile (asked with `suitable()`).
    pub fn uncompiled(&self) -> &[String] {
        &self.uncompiled
    }

    /// The first extractor (in the program's order) whose compiled regex
    /// matches `url`, written as the `url` crate writes it (ASCII).
    pub fn matching(&self, url: &str) -> Option<&str> {
        let plain = self.plain.matches(url);
        self.extractors
            .iter()
            .find(|extractor| {
                extractor.patterns.iter().any(|pattern| match pattern {
                    Pattern::Plain(index) => plain.matched(*index),
                    Pattern::Fancy(regex) => regex.is_match(url).unwrap_or(false),
                })
            })
            .map(|extractor| extractor.name.as_str())
    }

    /// The extractor that accepts `url`: a compiled regex, else the
    /// program's own `suitable()` for the extractors Rust cannot compile.
    pub async fn claim(&self, url: &str) -> Option<String> {
        if let Some(name) = self.matching(url) {
            return Some(name.to_owned());
        }
        if self.uncompiled.is_empty() {
            return None;
        }
        let names = serde_json::to_string(&self.uncompiled).ok()?;
        let mut invocation = Invocation::new(self.program.name(), &self.interpreter).args([
            OsString::from("-c"),
            self.program.suitable_script().into(),
            self.program_path.clone().into(),
            url.into(),
            names.into(),
        ]);
        invocation.timeout = SUITABLE_TIMEOUT;
        invocation.stall_timeout = SUITABLE_TIMEOUT;
        match run_to_end(&invocation).await {
            Ok(output) => Some(output.trim().to_owned()).filter(|name| !name.is_empty()),
            Err(reason) => {
                tracing::warn!(
                    program = self.program.name(),
                    "asking {} whether it accepts {url} {reason}",
                    self.program.name()
                );
                None
            }
        }
    }
}

/// What [`Downloader::recognise`](crate::Downloader::recognise) answers for
/// the program downloader `info` (its platform and downloader name): a
/// claim by one of the program's extractors when `info` is the program's
/// general platform, which is switched on, and the program is installed.
/// The source is the URL itself; the content type the downloader's first.
pub async fn recognise(
    program: Program,
    info: &DownloaderInfo,
    url: &Url,
    settings: &Settings,
) -> Option<Recognition> {
    if info.platform != program.general_platform() || !platform_enabled(settings, &info.platform) {
        return None;
    }
    let configured = ProgramSettings::read(settings, &info.platform, &info.name).ok()?;
    if !configured.enabled {
        return None;
    }
    let path = locate(&configured.path, program.name()).ok()?;
    let extractor = catalog(program, &path).await?.claim(url.as_str()).await?;
    let matched_by = match program {
        Program::YtDlp => MatchedBy::YtDlp { extractor },
        Program::GalleryDl => MatchedBy::GalleryDl { extractor },
    };
    Some(Recognition {
        matched_by,
        ..Recognition::by_rules(
            url,
            info.platform.clone(),
            url.as_str(),
            info.content_types.first().cloned().unwrap_or_default(),
        )
    })
}

/// The executable's size and modification time: a change means a new build.
type Stamp = (Option<SystemTime>, u64);

/// Catalogs read so far, per program and path; `None` records a failure
/// (logged once) until the executable changes.
type Cache = tokio::sync::Mutex<HashMap<(Program, PathBuf), (Stamp, Option<Arc<Catalog>>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// The extractors of `program` installed at `path`, read on first use and
/// cached for the process; `None` when they cannot be read (the reason is
/// logged once per executable).
pub async fn catalog(program: Program, path: &Path) -> Option<Arc<Catalog>> {
    let stamp = std::fs::metadata(path)
        .map(|meta| (meta.modified().ok(), meta.len()))
        .unwrap_or((None, 0));
    // Held while reading, so concurrent first requests start one Python.
    let mut known = cache().lock().await;
    let key = (program, path.to_path_buf());
    if let Some((seen, answer)) = known.get(&key)
        && *seen == stamp
    {
        return answer.clone();
    }
    let answer = match read_catalog(program, path).await {
        Ok(catalog) => {
            tracing::info!(
                program = program.name(),
                version = catalog.version(),
                "read {} extractor patterns of {} ({} asked with suitable())",
                catalog.compiled(),
                program.name(),
                catalog.uncompiled().len()
            );
            Some(Arc::new(catalog))
        }
        Err(reason) => {
            tracing::warn!(
                program = program.name(),
                "{} will not recognise URLs: {reason}",
                program.name()
            );
            None
        }
    };
    known.insert(key, (stamp, answer.clone()));
    answer
}

async fn read_catalog(program: Program, path: &Path) -> Result<Catalog, String> {
    let interpreter = interpreter_for(path);
    let mut invocation = Invocation::new(program.name(), &interpreter).args([
        OsString::from("-c"),
        program.list_script().into(),
        path.into(),
    ]);
    invocation.timeout = LIST_TIMEOUT;
    invocation.stall_timeout = LIST_TIMEOUT;
    let output = run_to_end(&invocation).await.map_err(|reason| {
        format!(
            "reading its extractors with {} {reason}",
            interpreter.display()
        )
    })?;
    let listing: Listing = serde_json::from_str(output.trim()).map_err(|err| {
        format!(
            "its extractor list is not the JSON expected ({err}): {}",
            super::excerpt(output.trim())
        )
    })?;
    let version = listing.version.clone();
    let compiled = tokio::task::spawn_blocking(move || compile(listing))
        .await
        .map_err(|err| format!("compiling its patterns failed: {err}"))??;
    Ok(Catalog {
        program,
        program_path: path.to_path_buf(),
        interpreter,
        version,
        extractors: compiled.extractors,
        plain: compiled.plain,
        uncompiled: compiled.uncompiled,
    })
}

fn compile(listing: Listing) -> Result<Compiled, String> {
    let mut extractors = Vec::with_capacity(listing.extractors.len());
    let mut plain = Vec::new();
    let mut uncompiled = Vec::new();
    for listed in listing.extractors {
        /// A pattern before it has its place in the set.
        enum Translated {
            Plain(String),
            Fancy(Regex),
        }
        let compiled: Option<Vec<Translated>> = listed
            .patterns
            .iter()
            .map(|pattern| {
                let translated = rust_pattern(pattern);
                // Parsing is cheap; what parses as plain syntax joins the set.
                if regex_syntax::Parser::new().parse(&translated).is_ok() {
                    Some(Translated::Plain(translated))
                } else {
                    Regex::new(&translated).ok().map(Translated::Fancy)
                }
            })
            .collect();
        let Some(compiled) = compiled else {
            uncompiled.push(listed.name);
            continue;
        };
        let patterns = compiled
            .into_iter()
            .map(|pattern| match pattern {
                Translated::Plain(translated) => {
                    plain.push(translated);
                    Pattern::Plain(plain.len() - 1)
                }
                Translated::Fancy(fancy) => Pattern::Fancy(fancy),
            })
            .collect();
        extractors.push(Extractor {
            name: listed.name,
            patterns,
        });
    }
    let plain = regex::RegexSetBuilder::new(&plain)
        // The set is one automaton of every pattern: above the default
        // limit meant for a single regex.
        .size_limit(256 << 20)
        // With the default 2 MiB cache the lazy DFA of so large a set gives
        // up and every URL takes ~0.5 ms; 8 MiB keeps it at ~10 µs (the
        // cache grows only as far as the URLs seen need).
        .dfa_size_limit(8 << 20)
        .build()
        .map_err(|err| format!("compiling its patterns failed: {err}"))?;
    Ok(Compiled {
        extractors,
        plain,
        uncompiled,
    })
}

/// A Python `re` pattern as `fancy-regex` reads it, anchored at the start
/// as `re.match` is: leading global flags (`(?x)`, `(?i)`) hoisted before
/// the anchor (a verbose pattern also gets a line break before the closing
/// group, so a trailing comment does not swallow it), `\Z` spelled `\z`,
/// a `[` inside a class escaped (Python reads it as a literal), spaces and
/// `#` inside a verbose pattern's classes escaped (Python keeps them),
/// `\w`, `\d` and `\s` as ASCII ranges (see `ascii_class`), and
/// group names dropped (the groups keep their numbers, which fancy-regex
/// would otherwise refuse to mix with a numbered reference such as
/// yt-dlp's `(?(1)…)`) unless a `(?P=name)` refers to one.
pub fn rust_pattern(python: &str) -> String {
    let mut rest = python;
    let mut flags = String::new();
    while let Some(after) = rest.strip_prefix("(?")
        && let Some(end) = after.find(')')
        && end > 0
        && after[..end].chars().all(|c| "aiLmsux".contains(c))
    {
        // `a`, `L` and `u` choose ASCII/locale/Unicode classes: Rust's
        // classes are Unicode already.
        flags.extend(after[..end].chars().filter(|c| "imsx".contains(*c)));
        rest = &after[end + 1..];
    }
    let verbose = flags.contains('x');
    let drop_names = !rest.contains("(?P=");
    let mut body = String::with_capacity(rest.len() + 16);
    let mut in_class = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next().unwrap_or('\\');
                match (ascii_class(escaped), in_class) {
                    (Some(AsciiClass::Ranges(ranges)), true) => body.push_str(ranges),
                    (Some(AsciiClass::Ranges(ranges)), false) => {
                        body.push('[');
                        body.push_str(ranges);
                        body.push(']');
                    }
                    (Some(AsciiClass::Complement(ranges)), false) => {
                        body.push_str("[^");
                        body.push_str(ranges);
                        body.push(']');
                    }
                    // A complement inside a class cannot be spelled as ranges.
                    (Some(AsciiClass::Complement(_)), true) | (None, _) => {
                        body.push('\\');
                        body.push(if escaped == 'Z' { 'z' } else { escaped });
                    }
                }
            }
            '[' if in_class => body.push_str("\\["),
            '[' => {
                in_class = true;
                body.push('[');
                if chars.peek() == Some(&'^') {
                    body.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    body.push_str("\\]");
                }
            }
            ']' if in_class => {
                in_class = false;
                body.push(']');
            }
            ' ' | '#' if in_class && verbose => {
                body.push('\\');
                body.push(c);
            }
            '(' if !in_class && drop_names && rest_starts(&chars, "?P<") => {
                for _ in 0.."?P<".len() {
                    chars.next();
                }
                for name_char in chars.by_ref() {
                    if name_char == '>' {
                        break;
                    }
                }
                body.push('(');
            }
            other => body.push(other),
        }
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("(?{flags})")
    };
    format!("{flags}^(?:{body}{})", if verbose { "\n" } else { "" })
}

/// `\w`, `\d` and `\s` (and their complements) as ASCII ranges. The URLs
/// matched are ASCII (the `url` crate writes hosts in punycode and
/// percent-encodes the rest), where Unicode and ASCII classes agree; the
/// Unicode ones made every compiled pattern several times larger (the
/// yt-dlp catalog alone took some 250 MiB, the ASCII one about 50 MiB).
enum AsciiClass {
    Ranges(&'static str),
    Complement(&'static str),
}

fn ascii_class(escaped: char) -> Option<AsciiClass> {
    const WORD: &str = "0-9A-Za-z_";
    const DIGIT: &str = "0-9";
    const SPACE: &str = "\\t\\n\\x0B\\x0C\\r ";
    Some(match escaped {
        'w' => AsciiClass::Ranges(WORD),
        'd' => AsciiClass::Ranges(DIGIT),
        's' => AsciiClass::Ranges(SPACE),
        'W' => AsciiClass::Complement(WORD),
        'D' => AsciiClass::Complement(DIGIT),
        'S' => AsciiClass::Complement(SPACE),
        _ => return None,
    })
}

/// Whether the characters still to come start with `prefix`.
fn rest_starts(chars: &std::iter::Peekable<std::str::Chars<'_>>, prefix: &str) -> bool {
    chars.clone().take(prefix.len()).eq(prefix.chars())
}

/// The Python that runs `program`: its `#!` interpreter when that is a
/// Python (directly or through `env`), else `python3` on `PATH`.
fn interpreter_for(program: &Path) -> PathBuf {
    use std::io::Read;
    let mut head = [0u8; 256];
    let read = std::fs::File::open(program)
        .and_then(|mut file| file.read(&mut head))
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..read]);
    let first = head.lines().next().unwrap_or_default();
    first
        .strip_prefix("#!")
        .and_then(|line| {
            let mut words = line.split_whitespace();
            let command = words.next()?;
            let command = if command.ends_with("/env") {
                words.find(|word| !word.starts_with('-'))?
            } else {
                command
            };
            command.contains("python").then(|| PathBuf::from(command))
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(python: &str, text: &str) -> bool {
        Regex::new(&rust_pattern(python))
            .unwrap()
            .is_match(text)
            .unwrap()
    }

    #[test]
    fn python_patterns_match_as_re_match_does() {
        // Anchored at the start only, like `re.match`.
        assert!(matches(
            r"https?://a\.example/(?P<id>\d+)",
            "https://a.example/12/more"
        ));
        assert!(!matches(r"https?://a\.example/", "see https://a.example/"));
        // Global flags at the front, verbose with a trailing comment.
        assert!(matches(
            "(?ix)https?://A\\.example/ # the site",
            "HTTPS://a.example/"
        ));
        // Look-arounds, named back-references and `\Z`.
        assert!(matches(
            r"https?://b\.example/(?!live)(?P<q>['x])(?P=q)\Z",
            "https://b.example/xx"
        ));
        assert!(!matches(
            r"https?://b\.example/(?!live)",
            "https://b.example/live"
        ));
        assert!(!matches(
            r"https?://c\.example/\d+\Z",
            "https://c.example/1/2"
        ));
        // A numbered conditional beside a named group (yt-dlp's YouTube).
        assert!(matches(
            r"(?:https?://y\.example/)?(?P<id>\w{3})(?(1).+)?$",
            "abc"
        ));
        // A `[` inside a class is a literal in Python.
        assert!(matches(
            r"https?://m\.example/[/+[\w-]+-(?P<id>\d+)",
            "https://m.example/a[b-12"
        ));
        // Word, digit and space classes, in and outside classes, negated.
        assert!(matches(
            r"https?://w\.example/\w+-\d\s?$",
            "https://w.example/a_Z9-7"
        ));
        assert!(matches(
            r"https?://w\.example/[\w.]+\W\D$",
            "https://w.example/a.b/x"
        ));
        assert!(!matches(
            r"https?://w\.example/\S+$",
            "https://w.example/a b"
        ));
        assert!(matches(
            r"https?://w\.example/[^\d/]+$",
            "https://w.example/abc"
        ));
        // Verbose classes keep their spaces and `#`.
        assert!(matches(
            "(?x) https?://v\\.example/ [ #]+ $",
            "https://v.example/ #"
        ));
    }

    #[test]
    fn the_first_extractor_in_order_claims_whether_plain_or_fancy() {
        let listed = |name: &str, patterns: &[&str]| ListedExtractor {
            name: name.into(),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        let compiled = compile(Listing {
            version: "1".into(),
            extractors: vec![
                listed("broken", &[r"https?://x\.example/(?P<a>", r"https?://"]),
                listed("not-live", &[r"https?://f\.example/(?!live)\w+"]),
                listed(
                    "plain",
                    &[r"https?://p\.example/\d+", r"https?://f\.example/"],
                ),
                listed("later", &[r"https?://p\.example/"]),
            ],
        })
        .unwrap();
        assert_eq!(compiled.uncompiled, ["broken"]);
        let catalog = Catalog {
            program: Program::YtDlp,
            program_path: PathBuf::new(),
            interpreter: PathBuf::new(),
            version: "1".into(),
            extractors: compiled.extractors,
            plain: compiled.plain,
            uncompiled: compiled.uncompiled,
        };
        assert_eq!(catalog.compiled(), 3);
        assert_eq!(catalog.matching("https://f.example/clip"), Some("not-live"));
        assert_eq!(catalog.matching("https://f.example/live"), Some("plain"));
        assert_eq!(catalog.matching("https://p.example/12"), Some("plain"));
        assert_eq!(catalog.matching("https://p.example/about"), Some("later"));
        assert_eq!(catalog.matching("see https://p.example/12"), None);
    }

    #[test]
    fn the_interpreter_comes_from_the_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "#!/opt/py/bin/python3.11\nimport x\n",
                "/opt/py/bin/python3.11",
            ),
            ("#!/usr/bin/env -S python3 -u\n", "python3"),
            ("#!/usr/bin/env python3\nPK\u{3}\u{4}", "python3"),
            ("#!/usr/bin/env bash\nexec pyenv\n", "python3"),
            ("\u{7f}ELF binary", "python3"),
        ];
        for (index, (head, expected)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("p{index}"));
            std::fs::write(&path, head).unwrap();
            assert_eq!(interpreter_for(&path), PathBuf::from(expected), "{head:?}");
        }
        assert_eq!(
            interpreter_for(Path::new("/nonexistent/yt-dlp")),
            PathBuf::from("python3")
        );
    }
}

/// The recognition table over the real installed programs' patterns.
#[cfg(all(
    test,
    feature = "ytdlp",
    feature = "gallerydl",
    feature = "instagram",
    feature = "tiktok",
    feature = "forum",
    feature = "direct"
))]
mod recognition {
    use crate::Registry;
    use crate::engines::{GalleryDl, YtDlp};
    use crate::model::Settings;
    use crate::recognise::MatchedBy;

    /// `(url, platform, source, content type, matched by)`; `source` `*` is the URL.
    const TABLE: &[(&str, &str, &str, &str, &str)] = &[
        // The named platforms, by their rules.
        (
            "https://www.instagram.com/evalongoria/",
            "instagram",
            "evalongoria",
            "posts",
            "rules",
        ),
        (
            "https://www.instagram.com/evalongoria/reels/",
            "instagram",
            "evalongoria",
            "reels",
            "rules",
        ),
        (
            "https://www.instagram.com/stories/evalongoria/",
            "instagram",
            "evalongoria",
            "stories",
            "rules",
        ),
        (
            "https://www.tiktok.com/@some.user",
            "tiktok",
            "some.user",
            "videos",
            "rules",
        ),
        (
            "https://forum.example.com/threads/some-title.123/",
            "forum",
            "forum.example.com",
            "images",
            "rules",
        ),
        (
            "https://www.vb.example/showthread.php?t=88&page=2",
            "forum",
            "vb.example",
            "images",
            "rules",
        ),
        (
            "https://bb.example.org/viewtopic.php?f=2&t=55",
            "forum",
            "bb.example.org",
            "images",
            "rules",
        ),
        // Video sites: yt-dlp.
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://youtu.be/dQw4w9WgXcQ",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.youtube.com/@LinusTechTips",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.youtube.com/channel/UCXuqSBlHAE6Xw-yeJA0Tunw",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.youtube.com/shorts/aqz-KE-bpKQ",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://vimeo.com/76979871",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.twitch.tv/videos/1234567890",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://soundcloud.com/forss/flickermood",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.dailymotion.com/video/x7tgad0",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://www.bilibili.com/video/BV1xx411c7mD",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        (
            "https://streamable.com/abc123",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        // Both claim a TikTok video: a video site, so yt-dlp.
        (
            "https://www.tiktok.com/@someone/video/7301234567890123456",
            "video",
            "*",
            "videos",
            "yt-dlp",
        ),
        // Galleries: gallery-dl, also where yt-dlp claims too.
        (
            "https://www.instagram.com/p/C1a2b3c4d5e/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.reddit.com/r/pics/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.reddit.com/r/pics/comments/abc123/a_title/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://x.com/someone",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://twitter.com/someone/status/1234567890123456789",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.pixiv.net/en/users/12345",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.pixiv.net/en/artworks/12345678",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.deviantart.com/someone",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.deviantart.com/someone/art/A-Title-123456789",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://imgur.com/a/AbCdEfG",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://imgur.com/gallery/AbCdEfG",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://bsky.app/profile/someone.bsky.social",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://bsky.app/profile/someone.bsky.social/post/3kabcdefghi2x",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://kemono.su/patreon/user/12345",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://danbooru.donmai.us/posts?tags=landscape",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.flickr.com/photos/someone/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.artstation.com/someone",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://someone.tumblr.com/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        (
            "https://www.pinterest.com/someone/some-board/",
            "gallery",
            "*",
            "media",
            "gallery-dl",
        ),
        // Nobody's: plain files, even those gallery-dl's catch-all `directlink` takes.
        (
            "https://example.com/files/report.pdf",
            "direct",
            "example.com",
            "file",
            "nobody",
        ),
        (
            "https://example.com/photo.jpg",
            "direct",
            "example.com",
            "file",
            "nobody",
        ),
        (
            "http://127.0.0.1:8080/file.bin",
            "direct",
            "127.0.0.1",
            "file",
            "nobody",
        ),
    ];

    fn who(matched_by: &MatchedBy) -> &'static str {
        match matched_by {
            MatchedBy::Rules => "rules",
            MatchedBy::YtDlp { .. } => "yt-dlp",
            MatchedBy::GalleryDl { .. } => "gallery-dl",
            MatchedBy::Nobody => "nobody",
        }
    }

    #[tokio::test]
    async fn every_named_platform_and_dozens_of_sites() {
        let mut registry = Registry::builtin();
        registry.register(YtDlp::video());
        registry.register(GalleryDl::gallery());
        let settings = Settings::default();
        let mut wrong = Vec::new();
        for (url, platform, source, content_type, by) in TABLE {
            let got = registry.recognise(url, &settings).await.unwrap();
            let source = if *source == "*" { *url } else { source };
            let seen = (
                got.platform.as_str(),
                got.source.as_str(),
                got.content_type.as_str(),
                who(&got.matched_by),
            );
            if seen != (*platform, source, *content_type, *by) {
                wrong.push(format!("{url}: {got:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "recognised wrongly:\n{}",
            wrong.join("\n")
        );
    }

    #[tokio::test]
    async fn a_switched_off_missing_or_broken_program_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let executable = |name: &str, text: String| {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.to_string_lossy().into_owned()
        };
        // A "Python" that prints no JSON, and programs run by it or by none.
        let fake_python = executable("fakepython", "#!/bin/sh\necho 'not json'\n".into());
        let chatty = executable("yt-dlp-chatty", format!("#!{fake_python}\n"));
        let orphan = executable("yt-dlp-orphan", "#!/nonexistent/python3\n".into());
        let mut registry = Registry::new();
        registry.register(YtDlp::video());
        let youtube = "https://www.youtube.com/watch?v=dQw4w9WgXcQ";
        for settings in [
            serde_json::json!({"platforms": {"video": {"enabled": false}}}),
            serde_json::json!({"platforms": {"video": {"yt-dlp": {"enabled": false}}}}),
            serde_json::json!({"platforms": {"video": {"yt-dlp": {"path": "/nonexistent/yt-dlp"}}}}),
            serde_json::json!({"platforms": {"video": {"yt-dlp": {"path": chatty}}}}),
            serde_json::json!({"platforms": {"video": {"yt-dlp": {"path": orphan}}}}),
        ] {
            let settings = Settings::from_value(&settings).unwrap();
            let got = registry.recognise(youtube, &settings).await.unwrap();
            assert_eq!(got.platform, "direct", "{:?}", settings.platforms);
        }
    }
}
