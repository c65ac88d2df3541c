//! SQL stores for mediadl.
