//! The built-in platforms, one cargo feature each.

#[cfg(feature = "direct")]
pub mod direct;
