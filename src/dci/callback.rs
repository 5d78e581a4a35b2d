//! Where callbacks may go (SSRF, CONTRACT §9): https only unless
//! `OPENSPP_DCI_ALLOW_HTTP_CALLBACKS`, and never to a loopback, private, link-local or otherwise
//! non-public address unless the operator allow-lists it (`OPENSPP_DCI_CALLBACK_ALLOW`, CIDRs).
//! Checked when a request names its `sender_uri`, and again before every delivery (the name
//! may resolve elsewhere by then). Redirects are not followed.
//!
//! A check that resolves the name is not enough on its own: the HTTP client resolves it again
//! when it connects, and a name whose DNS answers change between the two (DNS rebinding) would
//! pass the check with a public address and then connect to an internal one. So the callback
//! client resolves through [`Guarded`], which screens every address it hands the connector with
//! the same policy: whatever the DNS answers at connect time, only addresses the policy allows
//! are ever dialled. (IP literals are not resolved; the check has already screened them.)

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Name, Resolve, Resolving};
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

/// How host names become addresses: the system resolver when serving; a scripted one in tests
/// (a name that answers differently the second time).
pub trait Lookup: Send + Sync {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver.
pub struct System;

impl Lookup for System {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

impl Policy {
    /// The callback URL `text`, if it may be called; else why not.
    pub async fn check(&self, text: &str) -> Result<Url, String> {
        self.check_with(text, &System).await
    }

    /// As [`Policy::check`], resolving names with `lookup`.
    pub async fn check_with(&self, text: &str, lookup: &dyn Lookup) -> Result<Url, String> {
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
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => lookup
                .lookup(host)
                .await
                .map_err(|_| format!("the host `{host}` does not resolve"))?,
        };
        self.screen(host, &addresses)?;
        Ok(url)
    }

    /// Whether a callback may reach every one of `addresses` (what `host` resolved to).
    fn screen(&self, host: &str, addresses: &[IpAddr]) -> Result<(), String> {
        if addresses.is_empty() {
            return Err(format!("the host `{host}` does not resolve"));
        }
        for &ip in addresses {
            if internal(ip) && !self.allow.iter().any(|net| net.contains(&ip)) {
                return Err(format!(
                    "resolves to a non-public address ({ip}); the operator must allow-list it"
                ));
            }
        }
        Ok(())
    }
}

/// The callback client's resolver: `lookup`'s answer, refused unless the policy allows every
/// address in it, so the connection goes only where the policy allows however the name
/// resolved when it was checked.
pub struct Guarded {
    policy: Policy,
    lookup: Arc<dyn Lookup>,
}

impl Guarded {
    pub fn new(policy: Policy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addresses = lookup.lookup(host).await?;
            policy
                .screen(host, &addresses)
                .map_err(|why| io::Error::new(io::ErrorKind::PermissionDenied, why))?;
            let addrs: Vec<SocketAddr> = addresses
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client callbacks are POSTed with: short timeouts, no redirects, TLS verified, names
/// resolved through [`Guarded`] under `policy`.
pub fn client(policy: &Policy) -> reqwest::Client {
    client_with(policy, Arc::new(System))
}

/// As [`client`], resolving names with `lookup`.
pub fn client_with(policy: &Policy, lookup: Arc<dyn Lookup>) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("openspp-dci")
        .dns_resolver(Arc::new(Guarded::new(policy.clone(), lookup)))
        .build()
        .expect("the callback client builds")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// A name that answers `first` to the first lookup and `then` to every later one.
    struct Rebinding {
        first: IpAddr,
        then: IpAddr,
        asked: AtomicUsize,
    }

    impl Lookup for Rebinding {
        fn lookup(
            &self,
            _host: &str,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
            let n = self.asked.fetch_add(1, Ordering::SeqCst);
            let ip = if n == 0 { self.first } else { self.then };
            Box::pin(async move { Ok(vec![ip]) })
        }
    }

    #[tokio::test]
    async fn a_name_rebound_after_the_check_is_not_dialled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let lookup = Arc::new(Rebinding {
            first: "93.184.215.14".parse().unwrap(),
            then: "127.0.0.1".parse().unwrap(),
            asked: AtomicUsize::new(0),
        });
        let url = format!("http://rebind.example:{port}/cb");
        let strict = Policy {
            allow_http: true,
            allow: vec![],
        };
        // The check sees the public answer and lets the URL through …
        let checked = strict.check_with(&url, lookup.as_ref()).await.unwrap();
        // … the connection resolves again, gets loopback, and is refused before it is dialled.
        let error = client_with(&strict, lookup.clone())
            .post(checked)
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        assert_eq!(lookup.asked.load(Ordering::SeqCst), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was dialled");
        // Allow-listed, the same answer is dialled: the client connects where the guard says.
        let loopback = Policy {
            allow_http: true,
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        let _ = client_with(&loopback, lookup.clone())
            .post(&url)
            .send()
            .await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        server.abort();
    }
}
