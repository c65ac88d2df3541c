//! One HTTP client per platform (its proxy and cookies), all sharing the
//! process's per-host limits, rebuilt when the settings change.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::error::Error;
use crate::fetch::{HttpClient, parse_netscape_cookies};
use crate::model::Settings;

#[derive(Debug)]
pub(crate) struct Clients {
    base: RwLock<HttpClient>,
    per_platform: RwLock<HashMap<String, HttpClient>>,
}

impl Clients {
    pub(crate) fn new(settings: &Settings) -> Result<Self, Error> {
        Ok(Self {
            base: RwLock::new(HttpClient::new(&settings.network)?),
            per_platform: RwLock::new(HashMap::new()),
        })
    }

    /// Rebuilds after a settings change; on invalid network settings the
    /// old clients stay (validation refuses those before they are saved).
    pub(crate) fn refresh(&self, settings: &Settings) {
        match HttpClient::new(&settings.network) {
            Ok(client) => {
                *self.base.write().expect("clients lock") = client;
                self.per_platform.write().expect("clients lock").clear();
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", error = %err, "keeping the previous HTTP client")
            }
        }
    }

    /// The client for `platform`: its proxy and its cookies file when set.
    pub(crate) fn for_platform(&self, platform: &str, settings: &Settings) -> HttpClient {
        if let Some(client) = self
            .per_platform
            .read()
            .expect("clients lock")
            .get(platform)
        {
            return client.clone();
        }
        let base = self.base.read().expect("clients lock").clone();
        let common = settings.platform_common(platform);
        let cookies = common.cookies();
        let has_proxy = settings.network.platform_proxies.contains_key(platform);
        if cookies.is_none() && !has_proxy {
            return base;
        }
        let mut builder = HttpClient::builder(&settings.network)
            .platform(platform)
            .share_limits_with(&base);
        if let Some(text) = cookies {
            match parse_netscape_cookies(text) {
                Ok(parsed) => builder = builder.cookies(parsed.jar),
                Err(err) => {
                    tracing::warn!(target: "mediadl::engine", platform, error = %err, "ignoring an invalid cookies file")
                }
            }
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", platform, error = %err, "using the default HTTP client");
                base
            }
        };
        self.per_platform
            .write()
            .expect("clients lock")
            .insert(platform.to_owned(), client.clone());
        client
    }
}

impl Clients {
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.per_platform.read().expect("clients lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_with_cookies_get_their_own_client() {
        let mut settings = Settings::default();
        settings.platforms.insert(
            "instagram".into(),
            serde_json::json!({"cookies": ".instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\tx\n"}),
        );
        let clients = Clients::new(&settings).unwrap();
        clients.for_platform("direct", &settings);
        assert_eq!(clients.cached(), 0);
        clients.for_platform("instagram", &settings);
        assert_eq!(clients.cached(), 1);
        clients.refresh(&settings);
        assert_eq!(clients.cached(), 0);
    }
}
