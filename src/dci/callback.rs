//! Where callbacks may go (SSRF, CONTRACT §9): https only unless
//! `OPENSPP_DCI_ALLOW_HTTP_CALLBACKS`, and never to a loopback, private, link-local or otherwise
//! non-public address unless the operator allow-lists it (`OPENSPP_DCI_CALLBACK_ALLOW`, CIDRs).
//! Checked when a request names its `sender_uri`, and again before every delivery (the name
//! may resolve elsewhere by then). Redirects are not followed.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

/// The operator's callback settings (kept with the configuration, checked here).
pub use crate::config::CallbackPolicy as Policy;

/// Addresses no callback may reach unless allow-listed: everything but global unicast.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

impl Policy {
    /// The callback URL `text`, if it may be called; else why not.
    pub async fn check(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must be https".into()),
            other => return Err(format!("scheme `{other}` is not allowed; use https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host = url.host_str().ok_or("has no host")?;
        let port = url.port_or_known_default().ok_or("has no port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| format!("the host `{host}` does not resolve"))?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("the host `{host}` does not resolve"));
        }
        for ip in addresses {
            if internal(ip) && !self.allow.iter().any(|net| net.contains(&ip)) {
                return Err(format!(
                    "resolves to a non-public address ({ip}); the operator must allow-list it"
                ));
            }
        }
        Ok(url)
    }
}

/// The client callbacks are POSTed with: short timeouts, no redirects, TLS verified.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("openspp-dci")
        .build()
        .expect("the callback client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_public_https_unless_allowed() {
        let strict = Policy::default();
        assert!(strict.check("http://93.184.215.14/cb").await.is_err());
        assert!(strict.check("https://93.184.215.14/cb").await.is_ok());
        for internal in [
            "https://127.0.0.1/cb",
            "https://10.1.2.3/cb",
            "https://192.168.0.1/cb",
            "https://169.254.169.254/latest",
            "https://[::1]/cb",
            "https://[::ffff:127.0.0.1]/cb",
            "https://[fd00::1]/cb",
            "https://0.0.0.0/cb",
            "https://user:pw@93.184.215.14/cb",
            "file:///etc/passwd",
        ] {
            assert!(strict.check(internal).await.is_err(), "{internal}");
        }
        let loopback = Policy {
            allow_http: true,
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(loopback.check("http://127.0.0.1:9/cb").await.is_ok());
        assert!(loopback.check("http://10.0.0.1/cb").await.is_err());
    }
}
