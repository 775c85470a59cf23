//! The web app's files: Trunk's `dist/`, embedded in release builds (one self-contained
//! binary) and read from disk in debug builds (rebuild the frontend, reload the page).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::{EmbeddedFile, RustEmbed};

use super::ApiError;

#[derive(RustEmbed)]
#[folder = "$KOKUBAN_DIST_DIR"]
#[allow_missing = true]
struct Dist;

/// Hashed file names never change content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is revalidated (cheaply, by ETag) on every load, so a new release is
/// picked up at once.
const REVALIDATE: &str = "no-cache";

/// `GET /` and `GET /r/{room}`: the app's page; the app reads the room from its URL.
/// It carries the Content-Security-Policy that admits exactly its own inline loader.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    match Dist::get("index.html") {
        Some(file) => {
            let csp = app_csp(&String::from_utf8_lossy(&file.data));
            let mut response = respond(file, "index.html", &headers);
            if let Ok(v) = HeaderValue::from_str(&csp) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, v);
            }
            response
        }
        None => not_built(),
    }
}

/// The app page's Content-Security-Policy. Scripts: files of this origin and the inline
/// module loader Trunk writes into `index.html`, admitted by its hash (so an injected inline
/// script is not); `'wasm-unsafe-eval'` lets it compile the wasm, and allows no `eval`.
/// `connect-src 'self'` covers the same-origin `ws:`/`wss:` WebSocket in current browsers.
/// The app sets `style` attributes (positions and sizes that change as it runs, so they cannot
/// be hashed): `style-src-attr` admits those, while style sheets and `<style>` elements stay
/// limited to this origin, and any `url()` in a style is still bound by `img-src`.
pub(crate) fn app_csp(html: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hashes: String = inline_scripts(html)
        .map(|script| {
            let digest = sha2::Sha256::digest(script.as_bytes());
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
            format!(" 'sha256-{b64}'")
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
         manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The bodies of the `<script>` elements without a `src` attribute, exactly as written
/// (what a CSP hash covers). Trunk's output is simple enough not to need an HTML parser.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("<script")?;
            let after = &rest[start..];
            let open_end = after.find('>')?;
            let tag = &after[..open_end];
            let body_start = &after[open_end + 1..];
            let close = body_start.find("</script>")?;
            let body = &body_start[..close];
            rest = &body_start[close..];
            if !tag.contains(" src=") && !tag.contains("\tsrc=") {
                return Some(body);
            }
        }
    })
}

/// Any other path: a file of the app, or 404.
pub(crate) async fn file(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.is_empty() {
        return index(headers).await;
    }
    // Debug builds read from disk: never let a path climb out of dist/.
    if path.contains('\\') || path.split('/').any(|s| s == ".." || s == ".") {
        return not_found(path, &headers);
    }
    match Dist::get(path) {
        Some(file) => respond(file, path, &headers),
        None => not_found(path, &headers),
    }
}

/// The first segments of the paths that programs use: a miss there is always answered in JSON.
const API_PREFIXES: [&str; 5] = ["api", "ws", "healthz", "readyz", "metrics"];

/// A 404: a page for a person who mistyped an address (a browser navigating asks for HTML),
/// the API's JSON for everything else, so that scripts and API clients still get a body they
/// can parse.
fn not_found(path: &str, headers: &HeaderMap) -> Response {
    if !wants_page(path, headers) {
        return ApiError::NotFound.into_response();
    }
    let mut response = (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        not_found_page(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&not_found_csp()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// Whether a missed `path` should get the HTML page: the request accepts HTML and the path is
/// not one of the API's.
fn wants_page(path: &str, headers: &HeaderMap) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    html && !API_PREFIXES.contains(&first)
}

/// The 404 page: no script, its one style element admitted by hash, nothing else loaded.
const NOT_FOUND_STYLE: &str = "\
:root{color-scheme:light dark;--bg:#fbfaf7;--ink:#1e1e1e;--muted:#6b6b6b;--accent:#4c6ef5}\
@media (prefers-color-scheme:dark){:root{--bg:#24453a;--ink:#f4f1e8;--muted:#a9b5ae;--accent:#8fa8ff}}\
html,body{height:100%;margin:0}\
body{display:flex;flex-direction:column;align-items:center;justify-content:center;gap:14px;\
padding:0 24px;background:var(--bg);color:var(--ink);text-align:center;\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
h1{margin:0;font-size:32px}p{max-width:440px;margin:0;color:var(--muted)}\
a{margin-top:10px;padding:12px 22px;border-radius:10px;background:var(--accent);color:#fff;\
font-weight:600;text-decoration:none}";

/// The 404 page, its style inline (one request, and nothing of the app to load).
fn not_found_page() -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Kokuban: page not found</title><style>{NOT_FOUND_STYLE}</style></head>\
         <body><h1>Nothing here</h1><p>There is no page at this address. A board's link looks \
         like <code>/r/…#edit=…</code>: check that it was copied whole, or start a new \
         board.</p><a href=\"/\">New board</a></body></html>\n"
    )
}

/// The 404 page's Content-Security-Policy: nothing but its own style element.
fn not_found_csp() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(NOT_FOUND_STYLE.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    format!(
        "default-src 'none'; style-src 'sha256-{b64}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

fn respond(file: EmbeddedFile, path: &str, headers: &HeaderMap) -> Response {
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache = if is_hashed(path) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(file.data.into_owned()));
        let mime = file.metadata.mimetype();
        let mime = if mime.starts_with("text/") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&mime) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// Trunk names built files `name-<hash>.ext` (wasm: `name-<hash>_bg.wasm`), the hash being a
/// 64-bit number in hex without leading zeros (so up to 16 digits, rarely fewer than 12).
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (12..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Served instead of the app when `dist/` was not built, so that a fresh checkout explains
/// itself instead of failing.
fn not_built() -> Response {
    const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <title>Kokuban: frontend not built</title></head><body>\
        <h1>The Kokuban server is running, but its web app was not built.</h1>\
        <p>Build it with <code>cargo xtask run</code> (builds the app, then starts the server), \
        or with <code>trunk build --release</code> at the repository root, then reload this page.</p>\
        <p>The WebSocket and API endpoints work without it.</p></body></html>\n";
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_src(csp: &str) -> &str {
        csp.split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap()
            .trim()
            .strip_prefix("script-src 'self' 'wasm-unsafe-eval'")
            .unwrap()
    }

    #[test]
    fn the_csp_admits_exactly_the_inline_loader_by_hash() {
        let html = "<head><script type=\"module\">\nimport init from '/a.js';\n</script>\
            <script src=\"/b.js\"></script></head>";
        let csp = app_csp(html);
        // sha256 of "\nimport init from '/a.js';\n", base64.
        use base64::Engine as _;
        use sha2::Digest as _;
        let expected = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(b"\nimport init from '/a.js';\n"));
        assert!(csp.contains(&format!("'sha256-{expected}'")), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
        assert!(!script_src(&csp).contains("unsafe"), "{csp}");
        assert!(csp.contains("style-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(app_csp("<p>no scripts</p>").contains("script-src 'self' 'wasm-unsafe-eval';"));
    }

    #[test]
    fn a_person_gets_a_page_for_a_mistyped_address_programs_get_json() {
        let html = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            h
        };
        let browser = html("text/html,application/xhtml+xml,*/*;q=0.8");
        assert!(wants_page("nope", &browser));
        assert!(wants_page("r/abc/extra", &browser));
        assert!(!wants_page("api/rooms/abc", &browser));
        assert!(!wants_page("ws", &browser));
        assert!(!wants_page("nope", &html("*/*")));
        assert!(!wants_page("nope", &HeaderMap::new()));

        let page = not_found("nope", &browser);
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let api = not_found("api/nope", &browser);
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn the_404_page_admits_exactly_its_own_style() {
        let page = not_found_page();
        let style = page
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .unwrap();
        assert_eq!(style, NOT_FOUND_STYLE);
        assert!(!page.contains("<script"));
        let csp = not_found_csp();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn trunk_hashed_names_are_recognized() {
        assert!(is_hashed("kokuban-frontend-1a2b3c4d5e6f7a8b_bg.wasm"));
        assert!(is_hashed("kokuban-frontend-1a2b3c4d5e6f7a8b.js"));
        assert!(is_hashed("assets/style-0123456789abcdef.css"));
        assert!(is_hashed("style-304056c25f7907b.css"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("favicon.ico"));
        assert!(!is_hashed("style-0123.css"));
        assert!(!is_hashed("style-0123456789abcdeg.css"));
    }
}
