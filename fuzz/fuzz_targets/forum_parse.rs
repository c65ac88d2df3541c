//! The forum parsers on arbitrary bytes: thread pages, host pages, forms,
//! links and thread URLs must never panic, and every media link found must
//! be an http(s) URL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mediadl::platforms::forum::links::{resolve_href, thread_id};
use mediadl::platforms::forum::parse::{find_form, largest_image};
use mediadl::platforms::forum::parse_thread_page;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let base = Url::parse("https://forum.example/threads/some-thread.1/page-2").expect("base URL");
    let page = parse_thread_page(&text, &base);
    for post in &page.posts {
        for link in &post.media {
            assert!(
                matches!(link.target.scheme(), "http" | "https"),
                "non-http media link {}",
                link.target
            );
        }
    }
    if let Some(next) = &page.next_page {
        assert!(matches!(next.scheme(), "http" | "https"));
    }
    if let Some(image) = largest_image(&text, &base) {
        assert!(matches!(image.scheme(), "http" | "https"));
    }
    let _ = find_form(&text, &base, "form", true);
    if text.len() < 4096 {
        if let Some(url) = resolve_href(&base, &text) {
            assert!(matches!(url.scheme(), "http" | "https"));
            let _ = thread_id(&url);
        }
    }
});
