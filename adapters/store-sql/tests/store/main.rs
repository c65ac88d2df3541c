
#[cfg(feature = "postgres")]
mod postgres;
