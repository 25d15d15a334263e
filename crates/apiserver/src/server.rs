//! The HTTPS front door: accepts connections, authenticates, and routes non-resource paths
//! (health, version, discovery, OpenAPI) itself and resource paths to [`crate::rest`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kinet_types::ApiError;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::auth::{self, User};
use crate::discovery;
use crate::http::{bytes_reply, error_reply, json_reply, Query, Reply};
use crate::join;
use crate::openapi;
use crate::path::{self, Route};
use crate::rest::Api;

/// Accepts TLS connections on one address until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, api: Arc<Api>) {
    let conn = move |tls: TlsStream<TcpStream>, peer: SocketAddr| {
        let api = api.clone();
        async move {
            // The serial is read once per connection; revocation is checked on every request.
            let cert_serial: Option<Arc<str>> = match tls.get_ref().1.peer_certificates() {
                Some([cert, ..]) => {
                    Some(kinet_pki::csr::serial_of(cert).unwrap_or_default().into())
                }
                _ => None,
            };
            let service = service_fn(move |req| {
                let api = api.clone();
                let serial = cert_serial.clone();
                async move { Ok::<_, Infallible>(handle(api, serial.as_deref(), peer, req).await) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
    };
    kinet_tls_server::serve("api", listener, tls, std::future::pending(), conn).await
}

async fn handle(
    api: Arc<Api>,
    cert_serial: Option<&str>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let service_account = |token: &str| api.service_account_user(token);
    // Bootstrap tokens are looked up only when no static token matches (a union authenticator).
    let bearer = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !api.tokens.iter().any(|u| u.token == *t));
    let bootstrap = match bearer.map(|t| join::authenticate(&api.store, t)) {
        Some(Err(e)) => return error_reply(&e),
        Some(Ok(user)) => user,
        None => None,
    };
    let has_cert = cert_serial.is_some();
    let user = match bootstrap
        .or_else(|| auth::authenticate(has_cert, authorization, &api.tokens, service_account))
    {
        Some(User::Certificate) if cert_serial.is_some_and(|s| join::revoked(&api.store, s)) => {
            return error_reply(&ApiError::unauthorized())
        }
        Some(user) if user.is_authenticated() || auth::is_public(&path) => user,
        _ => return error_reply(&ApiError::unauthorized()),
    };
    let reply = route(&api, &user, req).await;
    tracing::debug!(%peer, %method, %path, status = reply.status().as_u16(), elapsed = ?started.elapsed(), "request");
    reply
}

async fn route(api: &Arc<Api>, user: &User, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let get = req.method() == Method::GET;
    if let Some((endpoint, check)) =
        kinet_health::split_path(&path, &["healthz", "livez", "readyz"]).filter(|_| get)
    {
        let query = kinet_health::Query::parse(req.uri().query());
        return match api.health.report(endpoint, check, &query).await {
            Some(r) => bytes_reply(r.status, "text/plain; charset=utf-8", r.body),
            None => error_reply(&ApiError::no_route()),
        };
    }
    match path.as_str() {
        "/version" | "/version/" if get => return json_reply(200, &discovery::version()),
        join::CACERTS_PATH if get => {
            return bytes_reply(
                200,
                "text/plain; charset=utf-8",
                api.ca_pem.clone().into_bytes(),
            )
        }
        "/metrics" if get && !matches!(user, User::Bootstrap { .. }) => {
            let text = api.metrics.as_ref().map(|m| (m.0)()).unwrap_or_default();
            return bytes_reply(200, "text/plain; version=0.0.4; charset=utf-8", text);
        }
        "/openapi/v3" | "/openapi/v3/" if get => {
            let custom: Vec<(String, String)> = custom_documents(api)
                .into_iter()
                .map(|(path, doc)| (path, format!("{:016X}", kinet_types::hash::fnv1a_64(doc))))
                .collect();
            return json_reply(200, &openapi::index(&custom));
        }
        "/openapi/v2" | "/openapi/v2/" if get => {
            let protobuf = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains(openapi::V2_PROTOBUF_ACCEPT));
            let media = if protobuf {
                openapi::V2_PROTOBUF
            } else {
                "application/json"
            };
            return bytes_reply(200, media, openapi::v2_document(protobuf));
        }
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        if let Some(doc) = openapi::group_version(gv).filter(|_| get) {
            return bytes_reply(200, "application/json", doc);
        }
        return match custom_documents(api)
            .into_iter()
            .find(|(p, _)| p == gv.trim_matches('/'))
        {
            Some((_, doc)) if get => bytes_reply(200, "application/json", doc),
            _ => error_reply(&ApiError::no_route()),
        };
    }
    let lookup = |g: &str, v: &str, p: &str| api.crds.lookup(g, v, p);
    let Some(route) = path::route_with(&path, &lookup) else {
        return error_reply(&ApiError::no_route());
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let custom = api.crds.resources();
    match route {
        Route::Root { legacy } if get => {
            if accept.contains("as=APIGroupDiscoveryList") {
                bytes_reply(
                    200,
                    discovery::AGGREGATED_V2,
                    serde_json::to_vec(&discovery::aggregated(legacy, &custom)).unwrap_or_default(),
                )
            } else if legacy {
                json_reply(200, &discovery::api_versions(&api.server_address))
            } else {
                json_reply(200, &discovery::api_group_list(&custom))
            }
        }
        Route::Group { group } if get => match discovery::group(&group, &custom) {
            Some(doc) => json_reply(200, &doc),
            None => error_reply(&ApiError::no_route()),
        },
        Route::GroupVersion { group, version } if get => {
            match discovery::resource_list(&group, &version, &custom) {
                Some(doc) => json_reply(200, &doc),
                None => error_reply(&ApiError::no_route()),
            }
        }
        Route::Resource(target) => {
            if let Some(e) = join::bootstrapper_refusal(user, req.method(), Some(&target)) {
                return error_reply(&e);
            }
            let query = Query::parse(req.uri().query());
            api.handle(user, target, query, req).await
        }
        Route::Root { .. } | Route::Group { .. } | Route::GroupVersion { .. } => {
            error_reply(&ApiError::method_not_allowed(req.method().as_str(), &path))
        }
        Route::Unknown => error_reply(&ApiError::no_route()),
    }
}

/// The OpenAPI v3 documents of the custom group/versions, by index path (`apis/{group}/{version}`).
fn custom_documents(api: &Api) -> Vec<(String, Vec<u8>)> {
    let served: Vec<_> = api
        .crds
        .resources()
        .into_iter()
        .filter_map(|r| api.crds.served(r))
        .collect();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut gvs: Vec<(&str, &str)> = served
        .iter()
        .map(|s| (s.resource.group, s.resource.version))
        .collect();
    gvs.dedup();
    for (group, version) in gvs {
        let kinds: Vec<_> = served
            .iter()
            .filter(|s| (s.resource.group, s.resource.version) == (group, version))
            .map(|s| (s.resource, &s.version.schema))
            .collect();
        let doc = openapi::custom_document(&kinds);
        out.push((
            format!("apis/{group}/{version}"),
            serde_json::to_vec(&doc).unwrap_or_default(),
        ));
    }
    out
}
