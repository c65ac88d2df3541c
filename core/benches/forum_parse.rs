//! Parsing a 1 MB XenForo thread page (the target: ≤ 20 ms), and
//! the same for vBulletin and phpBB markup of similar size. Set
//! `FORUM_PARSE_ONCE=1` to parse each page once and exit (for callgrind:
//! instruction counts do not depend on the machine's load).
//!
//! `cargo bench -p mediadl --features forum --bench forum_parse`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group};
use mediadl::platforms::forum::parse::find_form;
use mediadl::platforms::forum::parse_thread_page;
use url::Url;

const TARGET_BYTES: usize = 1024 * 1024;

/// A page of about 1 MB: the saved page's head and tail around its posts,
/// repeated with fresh post ids until the size is reached.
fn megabyte_page(file: &str, post_start: &str, posts_end: &str, id_prefix: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/forum")
        .join(file);
    let html = std::fs::read_to_string(&path).expect("saved page");
    let start = html.find(post_start).expect("first post");
    let end = html.rfind(posts_end).expect("end of posts");
    let (head, posts, tail) = (&html[..start], &html[start..end], &html[end..]);
    let mut page = String::with_capacity(TARGET_BYTES + posts.len() * 2);
    page.push_str(head);
    let mut copy = 0u32;
    while page.len() + tail.len() < TARGET_BYTES {
        copy += 1;
        // Distinct ids per copy, as on a real page of many posts.
        page.push_str(&posts.replace(id_prefix, &format!("{id_prefix}{copy}")));
    }
    page.push_str(tail);
    page
}

fn cases() -> [(&'static str, String, &'static str); 3] {
    [
        (
            "xenforo",
            megabyte_page(
                "xenforo2_thread.html",
                "<article class=\"message message--post",
                "\t</div>\n\t</div>\n\t</div>\n\t<div class=\"block-outer block-outer--after\">",
                "post-",
            ),
            "https://forum.example/threads/jane-doe-red-carpet-photos.4567/",
        ),
        (
            "vbulletin4",
            megabyte_page(
                "vbulletin4_thread.html",
                "<li class=\"postbitlegacy",
                "\t</ol>",
                "123456",
            ),
            "https://vb.example/showthread.php?12345-Jane-Doe-Candids-amp-Events",
        ),
        (
            "phpbb",
            megabyte_page(
                "phpbb_topic.html",
                "\t\t<div id=\"p3001\"",
                "<div class=\"action-bar bar-bottom\">",
                "id=\"p",
            ),
            "https://board.example/viewtopic.php?t=777",
        ),
    ]
}

fn parse(c: &mut Criterion) {
    let cases = cases();
    let mut group = c.benchmark_group("forum_parse_1mb");
    for (name, page, url) in &cases {
        let url = Url::parse(url).expect("url");
        let parsed = parse_thread_page(page, &url);
        assert!(
            parsed.posts.len() > 50,
            "{name}: {} posts",
            parsed.posts.len()
        );
        group.throughput(Throughput::Bytes(page.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| parse_thread_page(black_box(page), &url))
        });
    }
    // The floor: lol_html reading the page with one handler that matches nothing.
    let (_, page, url) = &cases[0];
    let url = Url::parse(url).expect("url");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("stream_only", |b| {
        b.iter(|| find_form(black_box(page), &url, "form.none", false))
    });
    group.finish();
}

criterion_group!(benches, parse);

fn main() {
    if std::env::var_os("FORUM_PARSE_ONCE").is_some() {
        for (name, page, url) in cases() {
            let url = Url::parse(url).expect("url");
            let parsed = parse_thread_page(black_box(&page), &url);
            println!("{name}: {} bytes, {} posts", page.len(), parsed.posts.len());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
