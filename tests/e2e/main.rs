//! End-to-end tests of mediadl: a real server (in-process, port 0, fresh
//! data directory) against local fixture sites. One test binary for the
//! whole area; each area is a module.

mod browser;
