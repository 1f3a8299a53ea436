//! OAuth 1.0a request signing with HMAC-SHA1 (RFC 5849), as Twitter uses it.
//!
//! The signature covers the method, the base URL (no query) and every
//! parameter of the request — query, form body and the `oauth_*` protocol
//! parameters except `oauth_signature` — percent-encoded, sorted and joined.
//! The key is `enc(consumer_secret)&enc(token_secret)`.
//!
//! [`authorize`] signs an outgoing request; [`verify`] checks an incoming
//! one (the Twitter simulator uses it).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha1::Sha1;
use url::Url;

/// The only signature method we speak.
pub const SIGNATURE_METHOD: &str = "HMAC-SHA1";
/// `oauth_version`.
pub const VERSION: &str = "1.0";

type HmacSha1 = Hmac<Sha1>;

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~` becomes
/// `%XX` (upper-case hex) of its UTF-8 bytes.
pub fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Undoes [`percent_encode`] (any `%XX`, either case). `None` for a broken
/// escape or bytes that are not UTF-8.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// `scheme://host[:port]/path`: the URL as it enters the base string, with
/// no query or fragment and without a default port.
pub fn base_string_uri(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), url.path())
}

/// `METHOD&enc(base URI)&enc(normalized parameters)`. `params` are the
/// form body and `oauth_*` parameters (raw, not encoded); the query of
/// `url` is added here. An `oauth_signature` among them is left out.
pub fn signature_base_string(method: &str, url: &Url, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| (percent_encode(&name), percent_encode(&value)))
        .chain(
            params
                .iter()
                .filter(|(name, _)| name != "oauth_signature")
                .map(|(name, value)| (percent_encode(name), percent_encode(value))),
        )
        .collect();
    pairs.sort();
    let normalized = pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
    format!("{}&{}&{}", method.to_ascii_uppercase(), percent_encode(&base_string_uri(url)), percent_encode(&normalized))
}

fn mac(consumer_secret: &str, token_secret: &str) -> HmacSha1 {
    let key = format!("{}&{}", percent_encode(consumer_secret), percent_encode(token_secret));
    HmacSha1::new_from_slice(key.as_bytes()).expect("hmac accepts keys of any length")
}

/// The base64 HMAC-SHA1 signature of a request (see [`signature_base_string`]).
pub fn sign(method: &str, url: &Url, params: &[(String, String)], consumer_secret: &str, token_secret: &str) -> String {
    let mut mac = mac(consumer_secret, token_secret);
    mac.update(signature_base_string(method, url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The request being signed or checked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST` …
    pub method: &'a str,
    /// The full URL, query included.
    pub url: &'a Url,
    /// The `application/x-www-form-urlencoded` body parameters, raw; empty
    /// for other bodies.
    pub form: &'a [(String, String)],
}

/// Who signs: the consumer (app) and, after the first step, a token.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    /// `oauth_token`: none when asking for a request token.
    pub token: Option<&'a str>,
    /// The secret of `token`; empty without one.
    pub token_secret: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"***")
            .field("token", &self.token)
            .field("token_secret", &"***")
            .finish()
    }
}

/// The `oauth_*` parameters of a request, as carried by its
/// `Authorization: OAuth …` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OAuthParams {
    params: Vec<(String, String)>,
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OAuth authorization header: {0}")]
pub struct HeaderError(String);

impl OAuthParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn consumer_key(&self) -> Option<&str> {
        self.get("oauth_consumer_key")
    }

    pub fn token(&self) -> Option<&str> {
        self.get("oauth_token")
    }

    pub fn nonce(&self) -> Option<&str> {
        self.get("oauth_nonce")
    }

    /// `oauth_timestamp`, seconds since the Unix epoch.
    pub fn timestamp(&self) -> Option<u64> {
        self.get("oauth_timestamp")?.parse().ok()
    }

    pub fn callback(&self) -> Option<&str> {
        self.get("oauth_callback")
    }

    pub fn verifier(&self) -> Option<&str> {
        self.get("oauth_verifier")
    }

    pub fn signature(&self) -> Option<&str> {
        self.get("oauth_signature")
    }

    /// All parameters, in header order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// `OAuth name="value", …` with names and values percent-encoded.
    pub fn to_header(&self) -> String {
        let fields = self
            .params
            .iter()
            .map(|(name, value)| format!("{}=\"{}\"", percent_encode(name), percent_encode(value)))
            .collect::<Vec<_>>()
            .join(", ");
        format!("OAuth {fields}")
    }

    /// Reads an `Authorization: OAuth …` header. `realm` is dropped (it is
    /// not signed); other parameters must be `oauth_*`, each at most once.
    pub fn parse_header(header: &str) -> Result<Self, HeaderError> {
        let header = header.trim();
        let rest = header
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case("oauth "))
            .map(|_| &header[6..])
            .ok_or_else(|| HeaderError("not an OAuth header".into()))?;
        let mut params: Vec<(String, String)> = Vec::new();
        for field in rest.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (name, value) = field.split_once('=').ok_or_else(|| HeaderError(format!("no value in {field:?}")))?;
            let value = value
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| HeaderError(format!("unquoted value in {field:?}")))?;
            let name = percent_decode(name.trim()).ok_or_else(|| HeaderError(format!("bad escape in {field:?}")))?;
            let value = percent_decode(value).ok_or_else(|| HeaderError(format!("bad escape in {field:?}")))?;
            if name == "realm" {
                continue;
            }
            if !name.starts_with("oauth_") {
                return Err(HeaderError(format!("unexpected parameter {name:?}")));
            }
            if params.iter().any(|(known, _)| *known == name) {
                return Err(HeaderError(format!("{name} given twice")));
            }
            params.push((name, value));
        }
        Ok(Self { params })
    }
}

/// A fresh random `oauth_nonce`.
pub fn nonce() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// Seconds since the Unix epoch, for `oauth_timestamp`.
pub fn timestamp() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or_default()
}

/// Signs `request`: the `oauth_*` parameters (`extra` adds e.g.
/// `oauth_callback` or `oauth_verifier`) with their `oauth_signature`,
/// ready for [`OAuthParams::to_header`].
pub fn authorize(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    extra: &[(&str, &str)],
    nonce: &str,
    timestamp: u64,
) -> OAuthParams {
    let mut params: Vec<(String, String)> =
        extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    params.push(("oauth_consumer_key".into(), credentials.consumer_key.into()));
    params.push(("oauth_nonce".into(), nonce.into()));
    params.push(("oauth_signature_method".into(), SIGNATURE_METHOD.into()));
    params.push(("oauth_timestamp".into(), timestamp.to_string()));
    if let Some(token) = credentials.token {
        params.push(("oauth_token".into(), token.into()));
    }
    params.push(("oauth_version".into(), VERSION.into()));
    params.sort();

    let mut signed: Vec<(String, String)> = request.form.to_vec();
    signed.extend(params.iter().cloned());
    let signature = sign(request.method, request.url, &signed, credentials.consumer_secret, credentials.token_secret);
    params.push(("oauth_signature".into(), signature));
    OAuthParams { params }
}

/// Whether `oauth` carries a valid HMAC-SHA1 signature of `request` made
/// with these secrets. Compares in constant time. Checks nothing else:
/// keys, tokens, timestamps and nonces are the caller's business.
pub fn verify(request: &Request<'_>, oauth: &OAuthParams, consumer_secret: &str, token_secret: &str) -> bool {
    if oauth.get("oauth_signature_method") != Some(SIGNATURE_METHOD) {
        return false;
    }
    if oauth.get("oauth_version").is_some_and(|version| version != VERSION) {
        return false;
    }
    let Some(signature) = oauth.signature().and_then(|s| STANDARD.decode(s).ok()) else {
        return false;
    };
    let mut params: Vec<(String, String)> = request.form.to_vec();
    params.extend(oauth.params.iter().cloned());
    let mut mac = mac(consumer_secret, token_secret);
    mac.update(signature_base_string(request.method, request.url, &params).as_bytes());
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of Twitter's "Creating a signature" page.
    const CONSUMER_KEY: &str = "xvz1evFS4wEEPTGEFPHBog";
    const CONSUMER_SECRET: &str = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw";
    const TOKEN: &str = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb";
    const TOKEN_SECRET: &str = "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE";
    const NONCE: &str = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg";
    const TIMESTAMP: u64 = 1_318_622_958;
    const SIGNATURE: &str = "hCtSmYh+iHYCEqBWrE7C7hYmtUk=";

    fn example_url() -> Url {
        Url::parse("https://api.twitter.com/1.1/statuses/update.json?include_entities=true").unwrap()
    }

    fn example_form() -> Vec<(String, String)> {
        vec![("status".into(), "Hello Ladies + Gentlemen, a signed OAuth request!".into())]
    }

    fn example_credentials() -> Credentials<'static> {
        Credentials {
            consumer_key: CONSUMER_KEY,
            consumer_secret: CONSUMER_SECRET,
            token: Some(TOKEN),
            token_secret: TOKEN_SECRET,
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("Ladies + Gentlemen"), "Ladies%20%2B%20Gentlemen");
        assert_eq!(percent_encode("An encoded string!"), "An%20encoded%20string%21");
        assert_eq!(percent_encode("Dogs, Cats & Mice"), "Dogs%2C%20Cats%20%26%20Mice");
        assert_eq!(percent_encode("☃"), "%E2%98%83");
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(percent_decode("%E2%98%83%2b").as_deref(), Some("☃+"));
        assert_eq!(percent_decode("%Z1"), None);
    }

    #[test]
    fn base_string_matches_twitters_worked_example() {
        let mut params = example_form();
        params.extend(
            [
                ("oauth_consumer_key", CONSUMER_KEY),
                ("oauth_nonce", NONCE),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "1318622958"),
                ("oauth_token", TOKEN),
                ("oauth_version", "1.0"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(
            signature_base_string("post", &example_url(), &params),
            "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&\
             include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26\
             oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26\
             oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26\
             oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26\
             oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen\
             %252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
        assert_eq!(sign("POST", &example_url(), &params, CONSUMER_SECRET, TOKEN_SECRET), SIGNATURE);
    }

    #[test]
    fn authorize_signs_twitters_worked_example() {
        let url = example_url();
        let form = example_form();
        let request = Request { method: "POST", url: &url, form: &form };
        let oauth = authorize(&request, &example_credentials(), &[], NONCE, TIMESTAMP);
        assert_eq!(oauth.signature(), Some(SIGNATURE));
        assert_eq!(oauth.token(), Some(TOKEN));
        assert_eq!(oauth.timestamp(), Some(TIMESTAMP));
        assert!(oauth.to_header().contains("oauth_signature=\"hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D\""));
    }

    #[test]
    fn a_header_round_trips_and_verifies() {
        let url = example_url();
        let form = example_form();
        let request = Request { method: "POST", url: &url, form: &form };
        let oauth = authorize(
            &request,
            &example_credentials(),
            &[("oauth_callback", "http://localhost/cb?x=1")],
            NONCE,
            TIMESTAMP,
        );
        let parsed = OAuthParams::parse_header(&format!("OAuth realm=\"x\", {}", &oauth.to_header()[6..])).unwrap();
        assert_eq!(parsed, oauth);
        assert_eq!(parsed.callback(), Some("http://localhost/cb?x=1"));
        assert!(verify(&request, &parsed, CONSUMER_SECRET, TOKEN_SECRET));
    }

    #[test]
    fn verify_refuses_wrong_secrets_and_tampered_requests() {
        let url = example_url();
        let form = example_form();
        let request = Request { method: "POST", url: &url, form: &form };
        let oauth = authorize(&request, &example_credentials(), &[], NONCE, TIMESTAMP);
        assert!(verify(&request, &oauth, CONSUMER_SECRET, TOKEN_SECRET));
        assert!(!verify(&request, &oauth, "wrong", TOKEN_SECRET));
        assert!(!verify(&request, &oauth, CONSUMER_SECRET, "wrong"));

        let get = Request { method: "GET", ..request };
        assert!(!verify(&get, &oauth, CONSUMER_SECRET, TOKEN_SECRET));
        let other_form = vec![("status".to_owned(), "Goodbye".to_owned())];
        let tampered = Request { form: &other_form, ..request };
        assert!(!verify(&tampered, &oauth, CONSUMER_SECRET, TOKEN_SECRET));
        let other_url = Url::parse("https://api.twitter.com/1.1/statuses/update.json").unwrap();
        let no_query = Request { url: &other_url, ..request };
        assert!(!verify(&no_query, &oauth, CONSUMER_SECRET, TOKEN_SECRET));

        let unsigned = OAuthParams::parse_header(&oauth.to_header().replace("HMAC-SHA1", "PLAINTEXT")).unwrap();
        assert!(!verify(&request, &unsigned, CONSUMER_SECRET, TOKEN_SECRET));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert!(OAuthParams::parse_header("Bearer abc").is_err());
        assert!(OAuthParams::parse_header("OAuth oauth_token=abc").is_err());
        assert!(OAuthParams::parse_header("OAuth status=\"x\"").is_err());
        assert!(OAuthParams::parse_header("OAuth oauth_token=\"a\", oauth_token=\"b\"").is_err());
        assert!(OAuthParams::parse_header("OAuth oauth_token=\"%G0\"").is_err());
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 32);
    }
}
