//! nginx's and Apache httpd's default sites: the pages the real images serve, their
//! headers, and their access logs.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;

use crate::logfmt::Access;
use crate::run::{Signals, Started};
use crate::server::{stdout_line, Bind, Handler, Req, Resp};

/// The nginx version the `Server` header and error pages name (server_tokens on, as in the
/// image).
pub const NGINX_VERSION: &str = "nginx/1.29.3";
/// The httpd image's `Server` header.
pub const HTTPD_SERVER: &str = "Apache/2.4.65 (Unix)";

/// `/usr/share/nginx/html/index.html`.
pub const NGINX_INDEX: &str = r#"<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"#;

/// `/usr/share/nginx/html/50x.html`.
pub const NGINX_50X: &str = r#"<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
"#;

/// `/usr/local/apache2/htdocs/index.html`.
pub const HTTPD_INDEX: &str = "<html><body><h1>It works!</h1></body></html>\n";

/// A response before it is put on the wire: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Status code.
    pub status: StatusCode,
    /// Extra headers besides `Server`, `Content-Length` and `Date`.
    pub headers: Vec<(&'static str, String)>,
    /// The body (sent for GET, withheld for HEAD).
    pub body: String,
}

/// nginx's built-in error page (CRLF lines, as `ngx_http_special_response.c` has them).
fn nginx_error(status: StatusCode, title: &str) -> Page {
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{NGINX_VERSION}</center>\r\n</body>\r\n</html>\r\n"
    );
    Page {
        status,
        headers: vec![("content-type", "text/html".into())],
        body,
    }
}

/// What nginx's default server answers for `method` and `path`.
pub fn nginx_page(method: &Method, path: &str) -> Page {
    let file = match normalize(path).as_str() {
        "/" | "/index.html" => Some(NGINX_INDEX),
        "/50x.html" => Some(NGINX_50X),
        _ => None,
    };
    match file {
        None => nginx_error(StatusCode::NOT_FOUND, "404 Not Found"),
        Some(_) if method != Method::GET && method != Method::HEAD => {
            nginx_error(StatusCode::METHOD_NOT_ALLOWED, "405 Not Allowed")
        }
        Some(body) => Page {
            status: StatusCode::OK,
            headers: vec![
                ("content-type", "text/html".into()),
                ("accept-ranges", "bytes".into()),
            ],
            body: body.to_string(),
        },
    }
}

/// Apache's error document for `status`.
fn apache_error(status: StatusCode, title: &str, message: &str) -> Page {
    let reason = status.canonical_reason().unwrap_or("");
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{title}</title>\n</head><body>\n<h1>{reason}</h1>\n<p>{message}</p>\n</body></html>\n"
    );
    Page {
        status,
        headers: vec![("content-type", "text/html; charset=iso-8859-1".into())],
        body,
    }
}

/// What httpd's default configuration answers for `method` and `path`.
pub fn httpd_page(method: &Method, path: &str) -> Page {
    if !matches!(normalize(path).as_str(), "/" | "/index.html") {
        return apache_error(
            StatusCode::NOT_FOUND,
            "404 Not Found",
            "The requested URL was not found on this server.",
        );
    }
    if method != Method::GET && method != Method::HEAD && method != Method::OPTIONS {
        let mut page = apache_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed",
            &format!("The requested method {method} is not allowed for this URL."),
        );
        page.headers.push(("allow", "GET,POST,OPTIONS,HEAD".into()));
        return page;
    }
    Page {
        status: StatusCode::OK,
        headers: vec![
            ("content-type", "text/html".into()),
            ("accept-ranges", "bytes".into()),
        ],
        body: HTTPD_INDEX.to_string(),
    }
}

/// The path as a file server sees it: decoded, with repeated slashes merged.
fn normalize(path: &str) -> String {
    let decoded = crate::query::unescape(&path.replace('+', "%2B")).unwrap_or_else(|| path.into());
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Which site a handler serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Site {
    Nginx,
    Httpd,
}

pub(crate) fn handler(site: Site) -> Handler {
    Arc::new(move |req: Req| Box::pin(async move { respond(site, &req) }))
}

fn respond(site: Site, req: &Req) -> Resp {
    let (page, server) = match site {
        Site::Nginx => (nginx_page(&req.method, req.uri.path()), NGINX_VERSION),
        Site::Httpd => (httpd_page(&req.method, req.uri.path()), HTTPD_SERVER),
    };
    let head = req.method == Method::HEAD;
    let sent = if head { 0 } else { page.body.len() };
    let target = req.target();
    let access = Access {
        remote: req.remote.ip(),
        time: Utc::now(),
        method: req.method.as_str(),
        target: &target,
        version: req.version_text(),
        status: page.status.as_u16(),
        bytes: sent,
        referer: req.header("referer"),
        user_agent: req.header("user-agent"),
        forwarded_for: req.header("x-forwarded-for"),
    };
    stdout_line(&match site {
        Site::Nginx => access.nginx(),
        Site::Httpd => access.apache_common(),
    });
    let mut response = Response::builder()
        .status(page.status)
        .header(header::SERVER, server)
        .header(header::CONTENT_LENGTH, page.body.len());
    for (name, value) in &page.headers {
        response = response.header(*name, value);
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(page.body)
    };
    response
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Binds port 80 (or the test address) and returns the site's main loop: both images
/// stop at once on SIGTERM or SIGINT and exit 0.
pub(crate) async fn start(
    site: Site,
    bind: Bind,
    mut signals: Signals,
) -> std::io::Result<Started> {
    let listener = crate::server::listen_tcp(bind, 80).await?;
    let tcp = vec![listener.local_addr()?];
    let main = async move {
        let stop = async move {
            // A closed signal channel means nobody can stop us: serve on.
            if signals.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
            None
        };
        crate::server::serve_http(listener, handler(site), stop).await;
        0
    };
    Ok(Started {
        tcp,
        udp: Vec::new(),
        main: Box::pin(main),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_default_site() {
        let index = nginx_page(&Method::GET, "/");
        assert_eq!(index.status, StatusCode::OK);
        // The real image's Content-Length for `/`.
        assert_eq!(index.body.len(), 615);
        assert!(index.body.contains("<title>Welcome to nginx!</title>"));
        assert_eq!(nginx_page(&Method::GET, "//index.html").body, NGINX_INDEX);
        assert_eq!(
            nginx_page(&Method::HEAD, "/%69ndex.html").status,
            StatusCode::OK
        );
        assert_eq!(nginx_page(&Method::GET, "/50x.html").body.len(), 497);

        let missing = nginx_page(&Method::GET, "/nope");
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            missing.body,
            "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.29.3</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(
            nginx_page(&Method::POST, "/").status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            nginx_page(&Method::POST, "/x").status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn httpd_default_site() {
        let index = httpd_page(&Method::GET, "/");
        assert_eq!(index.status, StatusCode::OK);
        assert_eq!(index.body, "<html><body><h1>It works!</h1></body></html>\n");
        assert_eq!(index.body.len(), 45);
        let missing = httpd_page(&Method::GET, "/nope");
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(
            missing.body.contains("<h1>Not Found</h1>"),
            "{}",
            missing.body
        );
        let post = httpd_page(&Method::DELETE, "/");
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(post
            .body
            .contains("The requested method DELETE is not allowed"));
    }
}
