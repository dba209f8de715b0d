//! HTTP basic auth for the admin listener, with bcrypt hashes as exporter-toolkit's
//! `basic_auth_users`. bcrypt is slow on purpose (tens of ms at cost 10), so it runs on the
//! blocking pool, and a credential that passed is remembered (as exporter-toolkit does) so a
//! scrape every few seconds costs one comparison, not one bcrypt.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::HeaderMap;

/// The users, and the credentials already verified.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Arc<Mutex<HashMap<String, String>>>,
}

impl BasicAuth {
    /// Check every hash parses, so a typo fails at start (or reload), not at the first scrape.
    pub fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        for (user, hash) in &users {
            if user.contains(':') {
                return Err(format!("basic_auth_users: user name {user:?} contains ':'"));
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|e| format!("basic_auth_users.{user}: not a bcrypt hash: {e}"))?;
        }
        Ok(Self {
            users,
            verified: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Whether any user is configured (no users: no authentication).
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether `headers` carry valid basic credentials.
    pub async fn check(&self, headers: &HeaderMap) -> bool {
        let Some((user, pass)) = credentials(headers) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key = format!("{user}\u{0}{hash}");
        let seen = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|p| same(p.as_bytes(), pass.as_bytes()));
        if seen {
            return true;
        }
        let pass2 = pass.clone();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass2, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, pass);
        }
        ok
    }
}

/// `Authorization: Basic base64(user:pass)`; the scheme is case-insensitive (RFC 9110 §11.1).
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Compare every byte whatever the first difference, so timing does not leak the password.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn bcrypt_users_and_wrong_credentials() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prom".to_string(), hash)])).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(
            auth.check(&header(&format!("Basic {}", b64("prom:s3cret"))))
                .await
        );
        // Remembered: the second check needs no bcrypt, and still compares the password.
        assert!(
            auth.check(&header(&format!("basic {}", b64("prom:s3cret"))))
                .await
        );
        assert!(
            !auth
                .check(&header(&format!("Basic {}", b64("prom:wrong"))))
                .await
        );
        assert!(
            !auth
                .check(&header(&format!("Basic {}", b64("eve:s3cret"))))
                .await
        );
        assert!(!auth.check(&HeaderMap::new()).await);
        assert!(BasicAuth::new(BTreeMap::from([("a".into(), "plain".into())])).is_err());
    }
}
