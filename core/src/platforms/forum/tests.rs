//! Unit tests of the forum platform.
