//! The browser client: files from `web/`, read from disk in debug builds (edit and reload) and
//! embedded in release builds (the binary is all a self-hoster copies), plus the security headers
//! every response carries.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

/// The files under `web/`. rust-embed reads them from disk in debug builds and embeds them in
/// release builds.
#[derive(Embed)]
#[folder = "../../web/"]
struct WebAssets;

/// Sent on every response. The client has no inline script or style and loads nothing from other
/// origins; `connect-src 'self'` covers the same-origin WebSocket.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
     font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Adds the security headers to a response.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // A room link is the key to the room: never leak it to another site through Referer.
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
    );
    response
}

/// Serves `path` from the web client, with an ETag so browsers revalidate cheaply. Files are
/// not content-hashed (there is no bundler), so `no-cache` keeps every client on the served version.
pub(crate) fn asset(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = WebAssets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    );
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, etag);
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).unwrap_or_default();
    }
    builder
        .header(
            header::CONTENT_TYPE,
            content_type(path, file.metadata.mimetype()),
        )
        .body(Body::from(file.data.into_owned()))
        .unwrap_or_default()
}

fn content_type(path: &str, guessed: &str) -> String {
    // Browsers demand a JavaScript MIME type for modules; say it plainly rather than trust a guess.
    if path.ends_with(".js") {
        "text/javascript; charset=utf-8".to_owned()
    } else if guessed.starts_with("text/") {
        format!("{guessed}; charset=utf-8")
    } else {
        guessed.to_owned()
    }
}
