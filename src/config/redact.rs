//! Credentials in URLs, masked for anything printed or logged: `check-config`'s
//! summary and problems, the startup log line, `devicegraph`'s fatal errors.
//!
//! `upstream.base_url` and `cache.redis_url` may carry a password in their userinfo
//! (`redis://:secret@host:6379/0`). Secrets are `SecretString`s everywhere else; these
//! two are URLs the libraries need whole, so they are masked at the edges instead.
//! [`redact_url`] is exact for one URL (it parses it); [`redact_urls`] scans free
//! text, where a URL may be quoted inside a message or may not even parse.

use url::Url;

/// What replaces a URL's password (or a lone username, which may be a token).
const MASK: &str = "***";

/// `url` with its credentials masked: `redis://:***@host:6379/0`,
/// `https://user:***@host/api`, `https://***@host/` (a lone username is often a
/// token). In text that does not parse as a URL, everything between `://` (or the
/// start) and the last `@` is masked.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url.trim()) else {
        return mask_before_last_at(url);
    };
    if parsed.username().is_empty() && parsed.password().is_none() {
        // `user:password@host` parses as scheme `user` with an opaque path.
        return if parsed.cannot_be_a_base() {
            mask_before_last_at(url)
        } else {
            url.to_owned()
        };
    }
    let masked = if parsed.password().is_some() {
        parsed.set_password(Some(MASK))
    } else {
        parsed.set_username(MASK)
    };
    match masked {
        Ok(()) => parsed.to_string(),
        Err(()) => mask_before_last_at(url),
    }
}

fn mask_before_last_at(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_owned();
    };
    let start = text.find("://").map_or(0, |s| s + 3).min(at);
    format!("{}{MASK}{}", &text[..start], &text[at..])
}

/// Free text (an error message, a log line) with the credentials of every
/// `scheme://user:password@` in it masked, whether or not the URL around them parses.
/// The userinfo is taken to run to the last `@` before whitespace or a quote, so a
/// password with an unescaped `/`, `#` or `?` is masked too (at worst a host is as
/// well).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '\\'))
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &after[..userinfo_end];
                match userinfo.split_once(':') {
                    Some((user, _password)) if !user.contains('/') => {
                        out.push_str(user);
                        out.push(':');
                    }
                    _ => {}
                }
                out.push_str(MASK);
                rest = &after[userinfo_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}
