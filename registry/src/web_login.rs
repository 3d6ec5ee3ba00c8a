//! A password login for a page a person opens in a browser: the node's
//! operator console and the registry's fleet page share it.
//!
//! A successful login gives a random session cookie that scripts cannot
//! read (`HttpOnly`) and the browser sends only to the page's own paths
//! (`SameSite=Strict`, `Path=<prefix>`). Cookies do not tell ports apart, so
//! a page served by another program on the same host would get the cookie
//! too: every request the page's script makes must also carry the session's
//! **page token** in [`PAGE_HEADER`], which the login answer gives the page
//! and the page keeps in `sessionStorage` (per origin, port included). A
//! request whose `Origin` is not this host and port is refused. Wrong passwords are slowed down: after
//! [`FREE_FAILURES`] in a row, each waits a second longer (at most 30 s).

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The script both pages load first (`page.js`): calls with the page
/// token, the login, and building elements from untrusted text.
pub const PAGE_SCRIPT: &str = include_str!("web_login/page.js");

/// The header carrying the session's page token.
pub const PAGE_HEADER: &str = "x-outpost-page";
/// Wrong passwords in a row answered at once.
pub const FREE_FAILURES: u32 = 5;
/// How long a session lasts without a new login: a working day.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 32;

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("log in first")]
    NoSession,
    #[error(
        "requests must carry the session's page token in `X-Outpost-Page` and come from the \
         page itself (log in again on the page)"
    )]
    NoPageHeader,
    #[error("wrong password")]
    WrongPassword,
    #[error("cannot make a session: {0}")]
    Random(String),
}

/// One page's password and sessions.
#[derive(Debug)]
pub struct WebLogin {
    password: String,
    cookie: &'static str,
    path: &'static str,
    /// Session → when it ends, and the page token its requests carry.
    sessions: Mutex<HashMap<String, (Instant, String)>>,
    failures: Mutex<u32>,
}

/// A successful login: the cookie to set, and the page token the page keeps
/// (in `sessionStorage`, which no other origin, not even another port on
/// the same host, can read) and sends as [`PAGE_HEADER`].
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub cookie: HeaderValue,
    pub page_token: String,
}

impl WebLogin {
    /// A login for the page under `path` (`/console`), its cookie named
    /// `cookie`.
    pub fn new(password: String, cookie: &'static str, path: &'static str) -> WebLogin {
        WebLogin {
            password,
            cookie,
            path,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(0),
        }
    }

    /// How long to hold the next login attempt back: await it before
    /// [`WebLogin::log_in`].
    pub fn penalty(&self) -> Duration {
        let failures = self.failures.lock().map_or(FREE_FAILURES, |f| *f);
        Duration::from_secs(u64::from(failures.saturating_sub(FREE_FAILURES)).min(30))
    }

    /// Checks `password`; on success, a new session: the `Set-Cookie` value
    /// that carries it and the page token.
    pub fn log_in(&self, password: &str) -> Result<LoggedIn, Refused> {
        let right = same_secret(password.trim().as_bytes(), self.password.as_bytes());
        if let Ok(mut failures) = self.failures.lock() {
            *failures = if right { 0 } else { failures.saturating_add(1) };
        }
        if !right {
            return Err(Refused::WrongPassword);
        }
        let mut random = [0u8; 64];
        getrandom::fill(&mut random).map_err(|e| Refused::Random(e.to_string()))?;
        let session = hex::encode(&random[..32]);
        let page_token = hex::encode(&random[32..]);
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
            sessions.insert(
                session.clone(),
                (Instant::now() + SESSION_LIFETIME, page_token.clone()),
            );
        }
        let cookie = format!(
            "{}={session}; Path={}; HttpOnly; SameSite=Strict; Max-Age={}",
            self.cookie,
            self.path,
            SESSION_LIFETIME.as_secs()
        );
        let cookie = HeaderValue::from_str(&cookie).map_err(|e| Refused::Random(e.to_string()))?;
        Ok(LoggedIn { cookie, page_token })
    }

    /// Ends the session `headers` carry; the `Set-Cookie` value that clears
    /// it in the browser.
    pub fn log_out(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some((session, _)) = self.session(headers)
            && let Ok(mut sessions) = self.sessions.lock()
        {
            sessions.remove(&session);
        }
        let cleared = format!("{}=; Path={}; HttpOnly; Max-Age=0", self.cookie, self.path);
        HeaderValue::from_str(&cleared).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Lets a page's request in: a live session, its page token in
    /// [`PAGE_HEADER`], and, when the browser says where the request comes
    /// from (`Origin`), this very host and port.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let (_, page_token) = self.session(headers).ok_or(Refused::NoSession)?;
        let given = headers
            .get(PAGE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_secret(given.as_bytes(), page_token.as_bytes()) {
            return Err(Refused::NoPageHeader);
        }
        if let Some(origin) = headers.get(hyper::header::ORIGIN) {
            let host = headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok());
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest);
            if host.is_none() || origin_host != host {
                return Err(Refused::NoPageHeader);
            }
        }
        Ok(())
    }

    /// The session `headers` carry, if live, and its page token.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let session = headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value.to_string())?;
        let mut sessions = self.sessions.lock().ok()?;
        let now = Instant::now();
        sessions.retain(|_, (expires, _)| *expires > now);
        let page_token = sessions.get(&session)?.1.clone();
        Some((session, page_token))
    }
}

/// The password in `path`, made there (256 random bits, mode 0600) if the
/// file is not there yet. A file others can read is refused: whoever reads
/// it can log in.
pub fn password_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(std::io::Error::other(format!(
                        "{} can be read by other users (mode {mode:o}); run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    )));
                }
            }
            let password = text.trim().to_string();
            if password.len() < 16 {
                return Err(std::io::Error::other(format!(
                    "the password in {} is too short to resist guessing; delete the file to \
                     have a new one made",
                    path.display()
                )));
            }
            Ok(password)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
            let password = hex::encode(random);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path)?;
            file.write_all(format!("{password}\n").as_bytes())?;
            file.sync_all()?;
            Ok(password)
        }
        Err(error) => Err(error),
    }
}

/// Compares in time independent of where the strings first differ.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The security headers of a page's own files: only its own scripts and
/// styles run, it is never framed, its type is never guessed.
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        headers
    }

    #[test]
    fn a_session_needs_the_password_the_cookie_and_the_header() {
        let login = WebLogin::new("secret".into(), "page", "/page");
        assert_eq!(login.log_in("guess").err(), Some(Refused::WrongPassword));
        let logged_in = login.log_in("secret").expect("logged in");
        let cookie = logged_in.cookie.to_str().expect("text");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let pair = cookie.split(';').next().expect("pair");
        let token = logged_in.page_token.as_str();
        for header in ["", "1"] {
            assert_eq!(
                login.admit(&with(&[("cookie", pair), (PAGE_HEADER, header)])),
                Err(Refused::NoPageHeader),
                "a page without the session's token"
            );
        }
        let both = with(&[("cookie", pair), (PAGE_HEADER, token)]);
        assert_eq!(login.admit(&both), Ok(()));
        let other_port = with(&[
            ("cookie", pair),
            (PAGE_HEADER, token),
            ("host", "127.0.0.1:7171"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert_eq!(login.admit(&other_port), Err(Refused::NoPageHeader));
        let same_page = with(&[
            ("cookie", pair),
            (PAGE_HEADER, token),
            ("host", "127.0.0.1:7171"),
            ("origin", "http://127.0.0.1:7171"),
        ]);
        assert_eq!(login.admit(&same_page), Ok(()));
        assert_eq!(
            login.admit(&with(&[("cookie", "page=forged"), (PAGE_HEADER, token)])),
            Err(Refused::NoSession)
        );
        login.log_out(&both);
        assert_eq!(login.admit(&both), Err(Refused::NoSession));
    }

    #[test]
    fn wrong_passwords_in_a_row_are_slowed_down() {
        let login = WebLogin::new("secret".into(), "page", "/page");
        for _ in 0..FREE_FAILURES {
            assert_eq!(login.penalty(), Duration::ZERO);
            let _ = login.log_in("guess");
        }
        let _ = login.log_in("guess");
        assert_eq!(login.penalty(), Duration::from_secs(1));
        login.log_in("secret").expect("logged in");
        assert_eq!(login.penalty(), Duration::ZERO);
    }
}
