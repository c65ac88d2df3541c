//! Domain types: what the archive knows and what the API exposes.
//!
//! These types carry serde derives with the spec's field names, so adapters
//! can store and send them without a parallel set of DTOs. Anything an
//! adapter needs that is not part of the domain (password hashes, lease
//! tokens) lives next to the trait that moves it.

/// Gives a unit enum its text form from one table: `as_str` (the first
/// spelling of each variant) and a `FromStr` that accepts every spelling and
/// refuses anything else as `Error::invalid(field, "unknown <what> \"x\"…")`.
/// `folded by` names a function applied to the text before matching (log
/// levels parse in any case).
macro_rules! spellings {
    (
        $ty:ident, field $field:literal, unknown $what:literal $(, listing $listing:literal)?
        $(, folded by $fold:path)?;
        $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)?
    ) => {
        impl $ty {
            /// The value's API and database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match &*spellings!(@fold s $(, $fold)?) {
                    $($text $(| $alias)* => Ok(Self::$variant),)+
                    _ => Err(crate::Error::invalid(
                        $field,
                        format!(concat!("unknown ", $what, " {:?}" $(, " ", $listing)?), s),
                    )),
                }
            }
        }
    };
    (@fold $s:ident) => {
        std::borrow::Cow::<str>::Borrowed($s)
    };
    (@fold $s:ident, $fold:path) => {
        std::borrow::Cow::<str>::Owned($fold($s))
    };
}

mod download;
mod event;
pub mod general_platforms;
mod job;
mod log;
pub mod notifications;
mod platform;
mod queue;
pub mod settings;
mod stats;
mod user;

pub use download::*;
pub use event::*;
pub use job::*;
pub use log::*;
pub use platform::*;
pub use queue::*;
pub use settings::Settings;
pub use stats::*;
pub use user::*;

/// Free-form JSON metadata attached to downloads, queue items and log entries.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Rows per page, 1 to [`Page::MAX_PER_PAGE`].
    pub per_page: u32,
}

impl Page {
    /// The largest page size any list accepts (the spec's `per_page` max).
    pub const MAX_PER_PAGE: u32 = 200;

    /// A page clamped to sane bounds (page ≥ 1, 1 ≤ per_page ≤ 200).
    pub fn new(page: u32, per_page: u32) -> Self {
        Self {
            page: page.max(1),
            per_page: per_page.clamp(1, Self::MAX_PER_PAGE),
        }
    }

    /// Rows to skip before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new(1, 50)
    }
}

/// One page of a list and the total number of matching rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Paged<T> {
    /// The rows of this page, in the list's order.
    pub items: Vec<T>,
    /// Rows matching the query on all pages.
    pub total: u64,
}

impl<T> Paged<T> {
    /// Number of pages of `per_page` rows needed for `total` rows (at least 1).
    pub fn total_pages(&self, page: Page) -> u64 {
        self.total.div_ceil(u64::from(page.per_page)).max(1)
    }
}
