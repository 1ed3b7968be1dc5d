//! The web console: its files, embedded in the binary, and how they are served. The console is a
//! client of the `/v1` API and nothing more; what is here only hands its files to a browser,
//! with headers that keep a page from running anything but those files (Content-Security-Policy
//! without inline scripts, no framing, no MIME sniffing). The local gateway and the console
//! Lambda both answer through [`serve`].

use std::sync::OnceLock;

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// Addresses of the console's screens, for links in mail: the console's router (`app.js`,
/// `screens/project.js`) answers each of them.
pub mod links {
    use crate::ids::ProjectId;

    fn base(console: &str) -> &str {
        console.trim_end_matches('/')
    }

    /// A project's API keys section: its tiles.
    pub fn project(console: &str, p: &ProjectId) -> String {
        format!("{}/projects/{p}", base(console))
    }

    /// The owner's Requests list of a project.
    pub fn requests(console: &str, p: &ProjectId) -> String {
        format!("{}/requests", project(console, p))
    }

    /// A project's webhook endpoints and their deliveries.
    pub fn webhooks(console: &str, p: &ProjectId) -> String {
        format!("{}/webhooks", project(console, p))
    }

    /// The keys the person holds.
    pub fn my_keys(console: &str) -> String {
        format!("{}/me/keys", base(console))
    }
}

/// How people sign in to the console, as its `config.json` tells the page.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "sign_in", rename_all = "snake_case")]
pub enum SignIn {
    /// `keygate-local`'s own form: a user id, an e-mail address and a name; the gateway mints the
    /// token (`POST /local/sign-in`). Never offered by the AWS deployment.
    Local,
    /// OpenID Connect authorization code flow with PKCE against the platform's identity provider.
    Oidc { issuer: String, client_id: String, scope: String },
}

/// What the console's `config.json` tells the page: how people sign in, and the currency
/// amounts are shown in.
#[derive(Clone, Debug, Serialize)]
pub struct ConsoleConfig {
    #[serde(flatten)]
    pub sign_in: SignIn,
    pub currency: crate::money::Currency,
}

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzip: OnceLock<Vec<u8>>,
}

macro_rules! assets {
    ($($path:literal => $type:expr,)*) => {
        const COUNT: usize = [$($path),*].len();
        static ASSETS: [Asset; COUNT] = [
            $(Asset { path: $path, content_type: $type, body: include_bytes!(concat!("../console/", $path)), gzip: OnceLock::new() },)*
        ];
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

assets! {
    "index.html" => HTML,
    "console.css" => CSS,
    "app.js" => JS,
    "api.js" => JS,
    "auth.js" => JS,
    "components.js" => JS,
    "chart.js" => JS,
    "key-actions.js" => JS,
    "narrowed-tokens.js" => JS,
    "screens/sign-in.js" => JS,
    "screens/projects.js" => JS,
    "screens/project.js" => JS,
    "screens/api-keys.js" => JS,
    "screens/requests.js" => JS,
    "screens/issued-keys.js" => JS,
    "screens/settings.js" => JS,
    "screens/secrets.js" => JS,
    "screens/audit.js" => JS,
    "screens/webhooks.js" => JS,
    "screens/my-keys.js" => JS,
    "screens/key.js" => JS,
    "vendor/preact.js" => JS,
    "vendor/preact-hooks.js" => JS,
    "vendor/htm.js" => JS,
    "vendor/preact-iso-router.js" => JS,
    "vendor/preact-iso-lazy.js" => JS,
    "vendor/VERSIONS" => TEXT,
    "vendor/preact.LICENSE" => TEXT,
    "vendor/htm.LICENSE" => TEXT,
    "vendor/preact-iso.LICENSE" => TEXT,
}

/// Where the console's files are served from; every other path the console owns is a page.
pub const ASSET_PREFIX: &str = "/console/";

/// Paths that belong to the API or the gateway, never to the console.
const NOT_CONSOLE: [&str; 5] = ["/v1/", "/api/", "/.well-known/", "/local/", "/openapi.json"];

/// The Content-Security-Policy of every console response: the console's own scripts and styles
/// only (no inline script), API calls to its own origin (and to the identity provider's token
/// endpoint when it signs in with OpenID Connect), never framed.
pub fn content_security_policy(sign_in: &SignIn) -> String {
    let connect = match sign_in {
        SignIn::Local => "'self'".to_owned(),
        SignIn::Oidc { issuer, .. } => format!("'self' {}", origin(issuer)),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src {connect}; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `https://idp.example.com` of `https://idp.example.com/realms/x`.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Whether `path` is the console's to answer (for a GET or HEAD).
pub fn owns(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && !NOT_CONSOLE.iter().any(|p| path.starts_with(p))
}

/// The console's answer to a GET of `path`: one of its files, its `config.json`, or (for every
/// other path it owns) the page, whose script routes by the path. `accepts_gzip` comes from the
/// request's `Accept-Encoding`.
pub fn serve(path: &str, accepts_gzip: bool, config: &ConsoleConfig) -> Response<Body> {
    let csp = content_security_policy(&config.sign_in);
    let (status, content_type, body, gzip) = match path.strip_prefix(ASSET_PREFIX) {
        Some("config.json") => {
            let config = serde_json::to_vec(config).unwrap_or_default();
            (StatusCode::OK, "application/json", Body::Binary(config), false)
        }
        Some(file) => match ASSETS.iter().find(|a| a.path == file && a.path != "index.html") {
            Some(asset) if accepts_gzip => {
                (StatusCode::OK, asset.content_type, Body::Binary(asset.gzipped().to_vec()), true)
            }
            Some(asset) => (StatusCode::OK, asset.content_type, Body::Binary(asset.body.to_vec()), false),
            None => (StatusCode::NOT_FOUND, TEXT, Body::Text(format!("the console has no file {file}")), false),
        },
        None => {
            let page = &ASSETS[0];
            match accepts_gzip {
                true => (StatusCode::OK, page.content_type, Body::Binary(page.gzipped().to_vec()), true),
                false => (StatusCode::OK, page.content_type, Body::Binary(page.body.to_vec()), false),
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Files change only with the binary; a browser revalidates instead of guessing.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// The console Lambda's answer to any request that reaches it: its page and files for a GET or
/// HEAD of a path it owns; for anything else (an unknown `/v1/...` path, another method) the
/// problem+json the API would answer.
pub fn answer(req: &lambda_http::Request, config: &ConsoleConfig) -> Response<Body> {
    let path = req.uri().path();
    if !owns(req.method(), path) {
        let e = match req.method() == Method::GET || req.method() == Method::HEAD {
            true => crate::Error::NotFound(format!("route {path}")),
            false => crate::Error::MethodNotAllowed(format!("{path} allows GET")),
        };
        return crate::http::problem(&e);
    }
    let encoding = req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    serve(path, accepts_gzip(encoding), config)
}

impl Asset {
    fn gzipped(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(self.body);
            encoder.finish().unwrap_or_default()
        })
    }
}

/// Whether an `Accept-Encoding` value allows gzip.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or_default().trim();
            let refused = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Body>) -> Vec<u8> {
        match r.body() {
            Body::Binary(b) => b.clone(),
            Body::Text(t) => t.clone().into_bytes(),
            Body::Empty => Vec::new(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_file_of_the_console_directory_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "list each file of shared/console in `assets!`");
        for a in &ASSETS {
            let ext = a.path.rsplit('.').next().unwrap();
            let want = match ext {
                "js" => JS,
                "css" => CSS,
                "html" => HTML,
                _ => TEXT,
            };
            assert_eq!(a.content_type, want, "{}", a.path);
        }
    }

    #[test]
    fn pages_and_files_carry_the_security_headers() {
        for path in ["/", "/projects/01ABC", "/console/app.js", "/console/nothing.js"] {
            let r = serve(path, false, &local());
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert_eq!(serve("/console/nothing.js", false, &local()).status(), 404);
    }

    #[test]
    fn every_path_the_console_owns_is_the_page_and_the_api_is_not_its() {
        let page = serve("/projects/01ABC/issued-keys", false, &local());
        assert!(String::from_utf8(body(&page)).unwrap().contains("<script type=\"module\" src=\"/console/app.js\">"));
        assert!(owns(&Method::GET, "/"));
        assert!(owns(&Method::GET, "/me/keys"));
        assert!(!owns(&Method::POST, "/"));
        for api in ["/v1/projects", "/api/projects/p/x", "/.well-known/jwks.json", "/openapi.json", "/local/sign-in"] {
            assert!(!owns(&Method::GET, api), "{api}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script() {
        let html = String::from_utf8(ASSETS[0].body.to_vec()).unwrap();
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains("src="), "inline script: {tag}");
        }
        // No inline event handler (` onload=`, ` onclick=` …) either.
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 1..].chars().take_while(char::is_ascii_alphabetic).collect();
            assert!(!html[i + 1 + name.len()..].starts_with('='), "inline event handler {name}");
        }
    }

    #[test]
    fn gzip_is_served_when_accepted_and_decodes_to_the_file() {
        let r = serve("/console/vendor/preact.js", true, &local());
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body(&r).as_slice()), &mut plain).unwrap();
        assert_eq!(plain, include_bytes!("../console/vendor/preact.js"));
        assert!(body(&r).len() * 2 < plain.len());
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(!accepts_gzip(Some("br;q=1, gzip;q=0")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn the_lambda_answers_pages_and_leaves_the_api_to_problems() {
        let oidc = ConsoleConfig {
            sign_in: SignIn::Oidc {
                issuer: "https://id.example.com".into(),
                client_id: "k".into(),
                scope: "openid".into(),
            },
            currency: Default::default(),
        };
        let get = |path: &str| {
            let req = http::Request::builder().uri(path).header("accept-encoding", "gzip").body(Body::Empty).unwrap();
            answer(&req, &oidc)
        };
        let page = get("/projects/01ABC/requests");
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[header::CONTENT_ENCODING], "gzip");
        let unknown = get("/v1/nothing");
        assert_eq!(unknown.status(), 404);
        assert_eq!(unknown.headers()[header::CONTENT_TYPE], crate::http::PROBLEM_JSON);
        let post = http::Request::builder().method("POST").uri("/").body(Body::Empty).unwrap();
        assert_eq!(answer(&post, &oidc).status(), 405);
    }

    #[test]
    fn links_in_mail_name_screens_the_console_routes() {
        let p = crate::ids::ProjectId::generate();
        assert_eq!(links::project("https://k.example.com/", &p), format!("https://k.example.com/projects/{p}"));
        assert_eq!(
            links::requests("https://k.example.com", &p),
            format!("https://k.example.com/projects/{p}/requests")
        );
        assert_eq!(links::my_keys("https://k.example.com/"), "https://k.example.com/me/keys");
        let text =
            |path: &str| String::from_utf8(ASSETS.iter().find(|a| a.path == path).unwrap().body.to_vec()).unwrap();
        let app = text("app.js");
        assert!(app.contains(r#"path="/projects/:project/:tab?""#) && app.contains(r#"path="/me/keys""#));
        assert!(text("screens/project.js").contains("{ id: 'requests',"));
    }

    fn local() -> ConsoleConfig {
        ConsoleConfig { sign_in: SignIn::Local, currency: Default::default() }
    }

    #[test]
    fn config_tells_the_page_how_to_sign_in_and_csp_admits_the_identity_provider() {
        let oidc = SignIn::Oidc {
            issuer: "https://id.example.com/realms/platform".into(),
            client_id: "keygate".into(),
            scope: "openid email profile".into(),
        };
        let currency = crate::money::Currency::new("JPY", 0).unwrap();
        let r = serve("/console/config.json", false, &ConsoleConfig { sign_in: oidc.clone(), currency });
        let config: serde_json::Value = serde_json::from_slice(&body(&r)).unwrap();
        assert_eq!(config["sign_in"], "oidc");
        assert_eq!(config["client_id"], "keygate");
        assert_eq!(config["currency"], serde_json::json!({"code": "JPY", "exponent": 0}));
        assert!(content_security_policy(&oidc).contains("connect-src 'self' https://id.example.com;"));
        let local: serde_json::Value =
            serde_json::from_slice(&body(&serve("/console/config.json", false, &local()))).unwrap();
        assert_eq!(local, serde_json::json!({"sign_in": "local", "currency": {"code": "EUR", "exponent": 2}}));
    }
}
